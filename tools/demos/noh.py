#!/usr/bin/env python
"""NOH-NMS demo: train a small detector on synth-crowd, then Greedy-NMS vs NOH-NMS on the same model.

    python tools/demos/noh.py [--work-dir work_dirs/demo/noh] [--iters 400]

1. ``tools/make_data.py synth-crowd`` (generated crowds in the CrowdHuman layout);
2. ``tools/train.py`` on the small NOH-NMS config (ResNet-18/2, random init, CPU);
3. the trained checkpoint is evaluated through the mmengine Runner with each NMS
   (``model.test_cfg.rcnn.nms.type``): AP / Recall / MR^-2 printed side by side;
4. ``noh_crowd.png``: one crowded validation image, Greedy-NMS kept boxes (left) and
   NOH-NMS kept boxes with their hallucinated neighbours (right).
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CFG = 'configs/mmdet/noh/noh-nms_faster-rcnn_r18-w16_fpn_1xb4-400i_synth-crowd.py'
METHODS = ('greedy', 'noh', 'soft', 'adaptive')


def _train(cfg, work_dir, iters, data_root):
    log = work_dir / 'train.log'
    cmd = [sys.executable, 'tools/train.py', cfg, '--work-dir', str(work_dir / 'train'), '--cfg-options',
           f'train_cfg.max_iters={iters}', f'default_hooks.checkpoint.interval={iters}',
           f'train_dataloader.dataset.data_root={data_root}/']
    with open(log, 'w') as f:
        r = subprocess.run(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        print(log.read_text()[-4000:])
        raise SystemExit(f'training failed (log: {log})')
    return (work_dir / 'train' / 'last_checkpoint').read_text().strip()


def _draw(runner, cfg, data_root, out_png):
    """Greedy vs NOH kept boxes on the validation image with the most overlapping GT pairs."""
    import torch
    from PIL import Image, ImageDraw

    recs = [json.loads(line) for line in (data_root / 'annotation_val.odgt').read_text().splitlines() if line]

    def crowdedness(rec):
        boxes = [g['fbox'] for g in rec['gtboxes'] if g['tag'] == 'person']
        n = 0
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
                ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
                if iw > 0 and ih > 0 and iw * ih / (a[2] * a[3] + b[2] * b[3] - iw * ih) > 0.5:
                    n += 1
        return n

    idx = max(range(len(recs)), key=lambda i: crowdedness(recs[i]))
    dataset = runner.test_dataloader.dataset
    data = dataset[idx]
    batch = dict(inputs=[data['inputs']], data_samples=[data['data_samples']])
    model = runner.model.eval()
    panels = []
    for method in ('greedy', 'noh'):
        model.roi_head.test_cfg.nms['type'] = method
        with torch.no_grad():
            pred = model.test_step(batch)[0].pred_instances
        img = Image.open(data_root / 'Images' / f"{recs[idx]['ID']}.jpg").convert('RGB')
        scale = 3
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
        d = ImageDraw.Draw(img)
        for g in recs[idx]['gtboxes']:
            if g['tag'] == 'person':
                x, y, w, h = (v * scale for v in g['fbox'])
                d.rectangle([x, y, x + w, y + h], outline=(255, 255, 255), width=1)
        keep = pred.scores > 0.3
        for b, s in zip(pred.bboxes[keep].tolist(), pred.scores[keep].tolist()):
            d.rectangle([v * scale for v in b], outline=(0, 230, 0), width=3)
            d.text((b[0] * scale + 3, b[1] * scale + 2), f'{s:.2f}', fill=(0, 255, 0))
        if method == 'noh':
            on = keep & (pred.noh_scores > 0.3)
            for b in pred.noh_bboxes[on].tolist():
                d.rectangle([v * scale for v in b], outline=(255, 140, 0), width=1)
        d.text((4, 4), f'{"Greedy-NMS" if method == "greedy" else "NOH-NMS"}: {int(keep.sum())} boxes > 0.3'
               + (' (orange: hallucinated neighbours)' if method == 'noh' else ''), fill=(255, 255, 0))
        panels.append(img)
    canvas = Image.new('RGB', (panels[0].width * 2 + 10, panels[0].height), (0, 0, 0))
    canvas.paste(panels[0], (0, 0))
    canvas.paste(panels[1], (panels[0].width + 10, 0))
    tmp = out_png.with_name('.' + out_png.name + '.tmp.png')
    canvas.save(tmp)
    os.replace(tmp, out_png)
    model.roi_head.test_cfg.nms['type'] = 'noh'


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--work-dir', default='work_dirs/demo/noh')
    p.add_argument('--iters', type=int, default=400, help='training iterations (batch 4)')
    p.add_argument('--methods', nargs='+', default=list(METHODS), choices=METHODS)
    a = p.parse_args(argv)
    t0 = time.time()
    work_dir = Path(a.work_dir)
    if not work_dir.is_absolute():
        work_dir = REPO / work_dir
    work_dir.mkdir(parents=True, exist_ok=True)

    import mm_ext  # noqa: F401  compat fixes
    from mm_ext.datagen import make_dataset

    data_root = make_dataset('synth-crowd')
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
    cfg.test_evaluator.ann_file = str(data_root / 'annotation_val.odgt')
    runner = Runner.from_cfg(cfg)
    rows = {}
    for method in a.methods:
        runner.model.roi_head.test_cfg.nms['type'] = method
        if method == 'soft':
            runner.model.roi_head.test_cfg.nms['soft_method'] = 'linear'
        rows[method] = runner.test()
        runner.model.roi_head.test_cfg.nms.pop('soft_method', None)
    out_png = work_dir / 'noh_crowd.png'
    _draw(runner, cfg, data_root, out_png)

    n_val = len(runner.test_dataloader.dataset)
    print(f'\nNOH-NMS demo: same trained model, {n_val} synth-crowd validation images '
          f'(AP / Recall higher is better, MR^-2 lower)')
    print(f'{"NMS":<10} {"AP":>7} {"Recall":>7} {"MR^-2":>7}')
    for method, m in rows.items():
        print(f'{method:<10} {100 * m["crowd_human/mAP"]:7.2f} {100 * m["crowd_human/Recall"]:7.2f} '
              f'{100 * m["crowd_human/mMR"]:7.2f}')
    g, n = rows.get('greedy'), rows.get('noh')
    if g and n:
        print(f'NOH - Greedy: AP {100 * (n["crowd_human/mAP"] - g["crowd_human/mAP"]):+.2f}, '
              f'Recall {100 * (n["crowd_human/Recall"] - g["crowd_human/Recall"]):+.2f}, '
              f'MR^-2 {100 * (n["crowd_human/mMR"] - g["crowd_human/mMR"]):+.2f}')
    (work_dir / 'metrics.json').write_text(json.dumps(rows, indent=1))
    print(f'picture: {out_png}\n[{time.time() - t0:5.0f}s] done')
    return 0


if __name__ == '__main__':
    sys.exit(main())
