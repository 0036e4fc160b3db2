#!/usr/bin/env python
"""Scene-bias experiment: does the pretrained representation recognise the motion or the scene?

Pretrains ``moco``, ``dsm`` and ``tbe`` (configs/mmaction/scene_bias/*) on the
scene-correlated train split of ``scene-bias-video``, then fits a linear probe
(multinomial logistic regression on the frozen, globally pooled backbone
features of the train split) and reports its accuracy on

* ``val``  - held-out clips whose scene still predicts the label (in distribution),
* ``test`` - clips whose scene is independent of the label (decorrelated),

next to a probe for the *scene* on the test split (how much scene the features
carry). A randomly initialised backbone is the reference row.

    python tools/experiments/scene_bias.py                 # 20 pretraining epochs per method
    python tools/experiments/scene_bias.py --epochs 5 --modes moco,tbe
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
CFG_DIR = REPO / 'configs' / 'mmaction' / 'scene_bias'


def _cfg_path(mode):
    return CFG_DIR / f'{mode}_r3d-tiny_1xb8-8x1-20e_scene-bias-video.py'


def _build_cfg(mode, data_root, work_dir, epochs, seed):
    from mmengine.config import Config
    cfg = Config.fromfile(str(_cfg_path('dsm' if mode == 'random' else mode)))
    cfg.work_dir = str(work_dir)
    cfg.train_cfg.max_epochs = max(epochs, 1)
    cfg.param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, T_max=max(epochs, 1),
                                eta_min=0.0)]
    cfg.train_dataloader.dataset.ann_file = str(data_root / 'train_list_videos.txt')
    cfg.train_dataloader.dataset.data_prefix = dict(video=str(data_root / 'videos'))
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=max(epochs, 1),
                                        max_keep_ckpts=1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=50)
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=seed)
    return cfg


def pretrain(mode, data_root, work_dir, epochs, seed):
    """Train one method (or build the random-init model); returns the model in eval mode."""
    from mmengine.runner import Runner
    from mmaction.registry import MODELS
    cfg = _build_cfg(mode, data_root, work_dir, epochs, seed)
    if mode == 'random' or epochs == 0:
        torch.manual_seed(seed)
        model = MODELS.build(cfg.model)
        model.init_weights()
        return model.eval()
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner.model.eval()


def _test_pipeline():
    from mmcv.transforms import Compose
    from mmaction.registry import TRANSFORMS
    return Compose([TRANSFORMS.build(t) for t in [
        dict(type='DecordInit'),
        dict(type='SampleFrames', clip_len=8, frame_interval=1, num_clips=2, test_mode=True),
        dict(type='DecordDecode'),
        dict(type='Resize', scale=(-1, 36)),
        dict(type='CenterCrop', crop_size=32),
        dict(type='FormatShape', input_format='NCTHW'),
        dict(type='PackActionInputs'),
    ]])


def load_split(data_root, split, pipeline):
    """Decoded clips (N, clips, C, T, H, W) uint8-valued floats, labels (N,), scenes (N,)."""
    meta = json.loads((data_root / 'meta.json').read_text())['clips']
    xs, ys, ss = [], [], []
    for line in (data_root / f'{split}_list_videos.txt').read_text().split('\n'):
        if not line.strip():
            continue
        name, label = line.split()
        r = pipeline(dict(filename=str(data_root / 'videos' / name), label=int(label),
                          start_index=0, modality='RGB'))
        xs.append(r['inputs'].float())
        ys.append(int(label))
        ss.append(meta[name]['scene'])
    return torch.stack(xs), torch.tensor(ys), torch.tensor(ss)


@torch.no_grad()
def features(model, x, batch=32):
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 1, 3, 1, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 1, 3, 1, 1, 1)
    out = [model.extract_feat((x[i:i + batch] - mean) / std) for i in range(0, len(x), batch)]
    return torch.cat(out)


def linear_probe(ftr, ytr, tests, steps=300, wd=1e-3, seed=0):
    """Multinomial logistic regression on standardised features (full-batch Adam).

    Returns:
        list[float]: accuracy (%) on each (features, labels) pair of ``tests``.
    """
    g = torch.Generator().manual_seed(seed)
    mu, sd = ftr.mean(0), ftr.std(0) + 1e-6
    z = (ftr - mu) / sd
    n_cls = int(ytr.max()) + 1
    w = (torch.randn(z.shape[1], n_cls, generator=g) * 0.01).requires_grad_()
    b = torch.zeros(n_cls, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z @ w + b, ytr) + wd * (w * w).sum()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return [100.0 * (((f - mu) / sd @ w + b).argmax(1) == y).float().mean().item()
                for f, y in tests]


def run(data_root, work_dir, modes, epochs, seed=0, log=print):
    import mm_ext.mmaction  # noqa: F401  (registers the video-SSL components)
    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().setLevel('WARNING')  # init_weights reports
    pipeline = _test_pipeline()
    splits = {s: load_split(data_root, s, pipeline) for s in ('train', 'val', 'test')}
    rows = []
    for mode in ['random'] + list(modes):
        t0 = time.time()
        model = pretrain(mode, data_root, Path(work_dir) / mode, 0 if mode == 'random' else epochs,
                         seed)
        f = {s: features(model, v[0]) for s, v in splits.items()}
        acc_val, acc_test = linear_probe(
            f['train'], splits['train'][1], [(f['val'], splits['val'][1]),
                                             (f['test'], splits['test'][1])], seed=seed)
        # scene decodability on the decorrelated split (train scenes -> test scenes)
        (scene_test,) = linear_probe(f['train'], splits['train'][2],
                                     [(f['test'], splits['test'][2])], seed=seed)
        rows.append(dict(method=mode, seed=seed, val_acc=acc_val, test_acc=acc_test,
                         scene_acc=scene_test, seconds=time.time() - t0))
        log(f'[scene_bias] seed {seed} {mode:6s} done in {time.time() - t0:.0f}s: val {acc_val:.1f} '
            f'test {acc_test:.1f} scene {scene_test:.1f}')
    return rows


def format_table(rows, epochs, n_classes=4):
    """Mean (and std over seeds when there are several) of each column per method."""
    seeds = sorted({r.get('seed', 0) for r in rows})
    lines = [f'scene-bias-video, linear probe on frozen features (pretraining: {epochs} epochs; '
             f'seeds {seeds}; chance {100 / n_classes:.0f}%)',
             f'{"method":8s} | {"val acc (scene-correlated)":>26s} | '
             f'{"test acc (decorrelated)":>23s} | {"scene acc on test":>17s}',
             '-' * 84]
    methods = list(dict.fromkeys(r['method'] for r in rows))

    def cell(vals, width):
        txt = f'{np.mean(vals):.1f}' + (f' +- {np.std(vals):.1f}' if len(vals) > 1 else '')
        return f'{txt:>{width}s}'

    for m in methods:
        rs = [r for r in rows if r['method'] == m]
        lines.append(f'{m:8s} | {cell([r["val_acc"] for r in rs], 26)} | '
                     f'{cell([r["test_acc"] for r in rs], 23)} | '
                     f'{cell([r["scene_acc"] for r in rs], 17)}')
    return '\n'.join(lines)


def _write_atomic(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.')
    with os.fdopen(fd, 'w') as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data-root', default=None,
                   help='scene-bias-video folder (default: generated under data/)')
    p.add_argument('--work-dir', default=str(REPO / 'work_dirs' / 'scene_bias'))
    p.add_argument('--modes', default='moco,dsm,tbe')
    p.add_argument('--epochs', type=int, default=20)
    p.add_argument('--seeds', default='0', help='comma-separated seeds; mean +- std is reported')
    p.add_argument('--threads', type=int, default=0, help='torch threads (0: keep the default)')
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.data_root is None:
        from mm_ext.datagen import make_dataset
        data_root = make_dataset('scene-bias-video')
    else:
        data_root = Path(a.data_root)
    if not (data_root / 'train_list_videos.txt').exists():
        p.error(f'--data-root {data_root} has no train_list_videos.txt; run '
                '`python tools/make_data.py scene-bias-video` or point it at the dataset folder')
    modes = [m for m in a.modes.split(',') if m]
    rows = []
    for seed in [int(s) for s in a.seeds.split(',') if s]:
        rows += run(data_root, Path(a.work_dir) / f'seed{seed}', modes, a.epochs, seed)
    table = format_table(rows, a.epochs)
    print(table)
    _write_atomic(Path(a.work_dir) / 'scene_bias.txt', table + '\n')
    _write_atomic(Path(a.work_dir) / 'scene_bias.json', json.dumps(rows, indent=1))
    return rows


if __name__ == '__main__':
    sys.exit(0 if main() else 1)
