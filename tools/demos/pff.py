#!/usr/bin/env python
"""PFF demo: train the quick digits-cifar config with the Filter-Skeleton hook through
tools/train.py, prune it with tools/pff_prune.py, print before/after accuracy, params, FLOPs
and measured speed, and keep the stripe-survival heatmap.

    python tools/demos/pff.py [--work-dir work_dirs/demo/pff]
"""
import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CFG = 'configs/mmpretrain/pff/pff_vgg-w8_1xb64-20e_digits-cifar.py'


def run(cmd, log):
    from mm_ext.engine.progress import run_logged  # output in the log, a progress line on the terminal
    return run_logged(cmd, log, f'pff {Path(log).stem}', cwd=REPO)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--work-dir', default='work_dirs/demo/pff')
    args = ap.parse_args()
    wd = (REPO / args.work_dir).resolve() if not Path(args.work_dir).is_absolute() else Path(args.work_dir)
    wd.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    sys.path.insert(0, str(REPO))
    from mm_ext.datagen import make_dataset
    make_dataset('digits-cifar', root=REPO / 'data')

    py = sys.executable
    run([py, 'tools/train.py', CFG, '--work-dir', str(wd / 'train')], wd / 'train.log')
    t_train = time.time() - t0
    ckpt = (wd / 'train' / 'last_checkpoint').read_text().strip()
    out = run([py, 'tools/pff_prune.py', CFG, ckpt, '--out', str(wd / 'pruned.pth'),
               '--heatmap', str(wd / 'pff_stripes.png'), '--speed-batches', '1', '64'], wd / 'prune.log')
    s = json.loads(out.strip().splitlines()[-1].split('PFF_SUMMARY ', 1)[1])
    key = next(iter(s['acc_before']))
    print(f"PFF on digits-cifar ({CFG}), threshold {s['threshold']}")
    print(f"{'':22s} {'before':>12s} {'after':>12s} {'change':>9s}")
    print(f"{'test ' + key:22s} {s['acc_before'][key]:11.2f}% {s['acc_after'][key]:11.2f}% "
          f"{s['acc_after'][key] - s['acc_before'][key]:+8.2f}")
    print(f"{'params (official)':22s} {s['params_before']:12d} {s['params_after']:12d} "
          f"{-100 * s['params_reduction']:+8.2f}%")
    print(f"{'params (deployed)':22s} {s['params_before_deploy']:12d} {s['params_after_deploy']:12d} "
          f"{100 * (s['params_after_deploy'] / s['params_before_deploy'] - 1):+8.2f}%")
    print(f"{'FLOPs / image':22s} {s['flops_before']:12d} {s['flops_after']:12d} {-100 * s['flops_reduction']:+8.2f}%")
    print(f"{'stripes kept':22s} {s['stripes_total']:12d} {s['stripes_kept']:12d}")
    print(f"{'filters kept':22s} {s['filters_total']:12d} {s['filters_kept']:12d}")
    for b, v in s['speed'].items():
        print(f"{'ms / batch ' + str(b):22s} {v['dense_ms']:12.2f} {v['pruned_ms']:12.2f} {v['speedup']:8.2f}x"
              + (f"  (plain export {v['plain_ms']:.2f} ms, {v['plain_speedup']:.2f}x)" if 'plain_ms' in v else ''))
    print(f"pruned vs masked dense: max |logit diff| {s['max_abs_logit_diff']:.1e}, "
          f"prediction agreement {100 * s['prediction_agreement']:.0f}%, reload diff {s['reload_max_abs_diff']:.1e}")
    print(f'train {t_train:.0f}s, total {time.time() - t0:.0f}s; heatmap {wd / "pff_stripes.png"}, '
          f'pruned checkpoint {wd / "pruned.pth"}; stock-mmpretrain plain export {wd / "pruned_plain.py"}; '
          f'fine-tune config {wd / "pruned_finetune.py"}')


if __name__ == '__main__':
    main()
