# DSM with mmaction's ResNet3d-18 set up as the release's Hara-style R3D-18 (conv1 7x7x7 with
# stride (1, 2, 2), max-pool stride 2 in time and space, stages 2-4 stride 2 in time and space;
# only the pool's temporal kernel differs: 1 here, 3 in the release), 512-d. Weights converted from
# the release load into it: python tools/convert_dsm_be_checkpoint.py CKPT OUT --arch r3d
_base_ = ['./dsm_bninception-i3d_1xb4-16x4-200e_ucf101-split1.py']
model = dict(
    backbone=dict(_delete_=True, type='ResNet3d', depth=18, pretrained=None, pretrained2d=False,
                  conv1_kernel=(7, 7, 7), conv1_stride_t=1, pool1_stride_t=2,
                  inflate=(1, 1, 1, 1), spatial_strides=(1, 2, 2, 2),
                  temporal_strides=(1, 2, 2, 2), zero_init_residual=False),
    in_channels=512)
