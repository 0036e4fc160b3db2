# DSM with mmaction's ResNet3d-34, 512-d.
_base_ = ['./dsm_r3d-18_1xb4-16x4-200e_ucf101-split1.py']
model = dict(backbone=dict(depth=34))
