#!/usr/bin/env python
"""NOH-NMS demo: train a small detector on synth-crowd, then Greedy-NMS vs NOH-NMS on the same model.

    python tools/demos/noh.py [--work-dir work_dirs/demo/noh] [--iters 400]

1. ``tools/make_data.py synth-crowd`` (generated crowds in the CrowdHuman layout);
2. ``tools/train.py`` on the small NOH-NMS config (ResNet-18/2, random init, CPU);
3. the trained checkpoint is evaluated through the mmengine Runner with each NMS
   (``model.test_cfg.rcnn.nms``, mmdet keys): every variant runs on the same decoded,
   identically (un)clipped boxes of the same model; AP / Recall / MR^-2 printed side by
   side, AP and MR^-2 cross-checked against mmdet's own ``CrowdHumanMetric`` on the same
   predictions;
4. ``noh_crowd.png``: one crowded validation image, Greedy-NMS kept boxes (left) and
   NOH-NMS kept boxes with their hallucinated neighbours (right).
"""
import argparse
import contextlib
import json
import os
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CFG = 'configs/mmdet/noh/noh-nms_faster-rcnn_r18-w16_fpn_1xb4-400i_synth-crowd.py'
# the variants, as mmdet test_cfg.rcnn.nms configs (keys: mm_ext/mmdet/noh/crowd_nms.py)
NMS_CFGS = {
    'greedy': dict(type='nms', iou_threshold=0.5),  # mmcv greedy NMS
    'noh': dict(type='noh_nms', iou_threshold=0.5, noh_score_thr=0.3, sigma=0.2, flag_thr=0.6, min_score=0.01),
    'soft': dict(type='soft_nms', iou_threshold=0.5, method='linear', min_score=0.01),  # mmcv = official method 1
    'adaptive': dict(type='crowd_nms', method='adaptive', iou_threshold=0.5, min_score=0.01),  # official method 4
}
METHODS = tuple(NMS_CFGS)


def _train(cfg, work_dir, iters, data_root):
    log = work_dir / 'train.log'
    cmd = [sys.executable, 'tools/train.py', cfg, '--work-dir', str(work_dir / 'train'), '--cfg-options',
           f'train_cfg.max_iters={iters}', f'default_hooks.checkpoint.interval={iters}',
           f'train_dataloader.dataset.data_root={data_root}/']
    # one intra-op thread: the ops are small, and on a shared 2-core machine several OpenMP
    # threads spinning against other processes slow training down by an order of magnitude
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    from mm_ext.engine.progress import run_logged  # output in the log, a progress line on the terminal
    run_logged(cmd, log, f'noh train {iters} iterations', cwd=REPO, env=env)
    return (work_dir / 'train' / 'last_checkpoint').read_text().strip()


@contextlib.contextmanager
def _quiet(path):
    """Send stdout/stderr (also at the file-descriptor level: progress bars) to ``path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, 'w') as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _iou(a, b):
    """IoU of (x1, y1, x2, y2) boxes a (N, 4) and b (M, 4), numpy -> (N, M)."""
    import numpy as np

    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter)


def _found(pred_boxes, gt_boxes, thr=0.5):
    """Number of GT boxes matched one-to-one (greedy by order) by predictions at IoU > thr."""
    if len(pred_boxes) == 0 or len(gt_boxes) == 0:
        return 0
    iou = _iou(pred_boxes, gt_boxes)
    used, n = set(), 0
    for row in iou:
        for j in row.argsort()[::-1]:
            if row[j] <= thr:
                break
            if j not in used:
                used.add(j)
                n += 1
                break
    return n


def _draw(runner, data_root, out_png, score_thr=0.5):
    """Greedy vs NOH kept boxes on the validation image where NOH-NMS finds the most extra people."""
    import numpy as np
    import torch
    from PIL import Image, ImageDraw

    recs = {json.loads(line)['ID']: json.loads(line)
            for line in (data_root / 'annotation_val.odgt').read_text().splitlines() if line}
    model = runner.model.eval()
    preds = {'greedy': {}, 'noh': {}}
    for batch in runner.test_dataloader:
        for method in preds:
            _set_nms(model, method)
            with torch.no_grad():
                for sample in model.test_step(batch):
                    inst = sample.pred_instances
                    keep = inst.scores > score_thr
                    preds[method][sample.img_id] = {k: getattr(inst, k)[keep].numpy()
                                                    for k in ('bboxes', 'scores', 'noh_bboxes', 'noh_scores')}
    _set_nms(model, 'noh')

    def gt(img_id):
        return np.array([[g['fbox'][0], g['fbox'][1], g['fbox'][0] + g['fbox'][2], g['fbox'][1] + g['fbox'][3]]
                         for g in recs[img_id]['gtboxes'] if g['tag'] == 'person']).reshape(-1, 4)

    def gain(img_id):
        g = gt(img_id)
        extra = _found(preds['noh'][img_id]['bboxes'], g) - _found(preds['greedy'][img_id]['bboxes'], g)
        return extra, len(g)

    img_id = max(preds['noh'], key=gain)
    panels = []
    scale = 3
    for method in ('greedy', 'noh'):
        p = preds[method][img_id]
        img = Image.open(data_root / 'Images' / f'{img_id}.jpg').convert('RGB')
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
        d = ImageDraw.Draw(img)
        for b in gt(img_id).tolist():
            d.rectangle([v * scale for v in b], outline=(255, 255, 255), width=1)
        for b, sc in zip(p['bboxes'].tolist(), p['scores'].tolist()):
            d.rectangle([v * scale for v in b], outline=(0, 230, 0), width=3)
            d.text((b[0] * scale + 4, b[1] * scale + 3), f'{sc:.2f}', fill=(0, 255, 0))
        if method == 'noh':
            for b, q in zip(p['noh_bboxes'].tolist(), p['noh_scores'].tolist()):
                if q > 0.3:  # the NOH is active for this box
                    d.rectangle([v * scale for v in b], outline=(255, 140, 0), width=2)
        title = ('Greedy-NMS' if method == 'greedy' else 'NOH-NMS') + \
            f': {len(p["bboxes"])} boxes > {score_thr}, {_found(p["bboxes"], gt(img_id))}/{len(gt(img_id))} people'
        if method == 'noh':
            title += ' (orange: hallucinated neighbours, white: GT)'
        d.text((4, 4), title, fill=(255, 255, 0))
        panels.append(img)
    canvas = Image.new('RGB', (panels[0].width * 2 + 10, panels[0].height), (0, 0, 0))
    canvas.paste(panels[0], (0, 0))
    canvas.paste(panels[1], (panels[0].width + 10, 0))
    tmp = out_png.with_name('.' + out_png.name + '.tmp.png')
    canvas.save(tmp)
    os.replace(tmp, out_png)
    return img_id, gain(img_id)


def _set_nms(model, method):
    from mmengine.config import ConfigDict

    model.roi_head.test_cfg.nms = ConfigDict(NMS_CFGS[method])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--work-dir', default='work_dirs/demo/noh')
    p.add_argument('--iters', type=int, default=400, help='training iterations (batch 4)')
    p.add_argument('--methods', nargs='+', default=list(METHODS), choices=METHODS)
    p.add_argument('--checkpoint', default=None, help='evaluate this checkpoint instead of training one')
    a = p.parse_args(argv)
    t0 = time.time()
    work_dir = Path(a.work_dir)
    if not work_dir.is_absolute():
        work_dir = REPO / work_dir
    work_dir.mkdir(parents=True, exist_ok=True)

    warnings.filterwarnings('ignore', message='pkg_resources is deprecated')  # mmengine import noise
    import torch

    import mm_ext  # noqa: F401  compat fixes
    from mm_ext.datagen import make_dataset

    torch.set_num_threads(1)  # see _train

    data_root = make_dataset('synth-crowd')
    if a.checkpoint:
        ckpt = a.checkpoint
    else:
        print(f'[{time.time() - t0:5.0f}s] synth-crowd at {data_root}; training {a.iters} iterations '
              f'(tools/train.py, log {work_dir / "train.log"})', flush=True)
        ckpt = _train(CFG, work_dir, a.iters, data_root)
        print(f'[{time.time() - t0:5.0f}s] trained: {ckpt}', flush=True)

    from mmengine.config import Config
    from mmengine.runner import Runner

    cfg = Config.fromfile(str(REPO / CFG))
    cfg.work_dir = str(work_dir / 'test')
    cfg.load_from = ckpt
    cfg.test_dataloader.dataset.data_root = f'{data_root}/'
    ann = str(data_root / 'annotation_val.odgt')
    # the project's metric (AP, MR, Recall) and, as an independent check, mmdet's own CrowdHumanMetric
    cfg.test_evaluator = [dict(cfg.test_evaluator, ann_file=ann),
                          dict(type='CrowdHumanMetric', ann_file=ann, metric=['AP', 'MR'], prefix='mmdet')]
    cfg.log_level = 'WARNING'
    rows = {}
    out_png = work_dir / 'noh_crowd.png'
    test_log = work_dir / 'test.log'
    from mm_ext.engine.progress import Heartbeat
    with Heartbeat(f'noh test {len(a.methods)} NMS variants', log=test_log), _quiet(test_log):
        runner = Runner.from_cfg(cfg)  # its logger writes to the redirected streams
        for method in a.methods:
            _set_nms(runner.model, method)
            rows[method] = runner.test()
        img_id, (extra, n_people) = _draw(runner, data_root, out_png)
    print(f'[{time.time() - t0:5.0f}s] evaluated {len(rows)} NMS variants (log {test_log})', flush=True)

    n_val = len(runner.test_dataloader.dataset)
    print(f'\nNOH-NMS demo: same trained model and the same decoded, unclipped boxes for every NMS; '
          f'{n_val} synth-crowd validation images (AP / Recall higher is better, MR^-2 lower)')
    print(f'{"NMS":<10} {"test_cfg.rcnn.nms":<66} {"AP":>7} {"Recall":>7} {"MR^-2":>7}  mmdet AP/MR')
    for method, m in rows.items():
        same = m['crowd_human/mAP'] == m['mmdet/mAP'] and m['crowd_human/mMR'] == m['mmdet/mMR']
        desc = ', '.join(f'{k}={v}' for k, v in NMS_CFGS[method].items() if k not in ('noh_score_thr', 'flag_thr'))
        print(f'{method:<10} {desc:<66} {100 * m["crowd_human/mAP"]:7.2f} {100 * m["crowd_human/Recall"]:7.2f} '
              f'{100 * m["crowd_human/mMR"]:7.2f}  {"same" if same else "DIFFERENT"}')
    g, n = rows.get('greedy'), rows.get('noh')
    if g and n:
        print(f'NOH - Greedy: AP {100 * (n["crowd_human/mAP"] - g["crowd_human/mAP"]):+.2f}, '
              f'Recall {100 * (n["crowd_human/Recall"] - g["crowd_human/Recall"]):+.2f}, '
              f'MR^-2 {100 * (n["crowd_human/mMR"] - g["crowd_human/mMR"]):+.2f}')
    (work_dir / 'metrics.json').write_text(json.dumps(rows, indent=1))
    print(f'picture: {out_png} (image {img_id}: NOH-NMS finds {extra:+d} of {n_people} people vs Greedy-NMS)')
    print(f'[{time.time() - t0:5.0f}s] done')
    return 0


if __name__ == '__main__':
    sys.exit(main())
