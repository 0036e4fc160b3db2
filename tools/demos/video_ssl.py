#!/usr/bin/env python
"""Demo of DSM / TBE video pretraining (short form of tools/experiments/scene_bias.py).

Pretrains moco, dsm and tbe briefly on the embedded scene-bias-video dataset (8-frame clips at
32 px, tiny ResNet3d), linear-probes each frozen backbone on the scene-correlated train split and
prints the accuracy on the scene-decorrelated test split side by side. About 3-4 minutes on
2 CPU cores. Output also in work_dirs/demo/video_ssl/.
"""
import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main():
    spec = importlib.util.spec_from_file_location('scene_bias_experiment',
                                                  REPO / 'tools' / 'experiments' / 'scene_bias.py')
    exp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(exp)
    exp.main(['--epochs', '6', '--work-dir', str(REPO / 'work_dirs' / 'demo' / 'video_ssl')])
    return 0


if __name__ == '__main__':
    sys.exit(main())
