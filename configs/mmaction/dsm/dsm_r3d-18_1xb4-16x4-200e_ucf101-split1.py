# DSM with mmaction's ResNet3d-18 (Hara-style R3D-18 approximation), 512-d.
_base_ = ['./dsm_bninception-i3d_1xb4-16x4-200e_ucf101-split1.py']
model = dict(
    backbone=dict(_delete_=True, type='ResNet3d', depth=18, pretrained=None, pretrained2d=False,
                  conv1_kernel=(3, 7, 7), inflate=(1, 1, 1, 1), spatial_strides=(1, 2, 2, 2),
                  temporal_strides=(1, 2, 2, 2), zero_init_residual=False),
    in_channels=512)
