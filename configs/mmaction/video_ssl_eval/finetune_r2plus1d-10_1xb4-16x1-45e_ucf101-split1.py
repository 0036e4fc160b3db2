# Fine-tuning a DSM / BE-pretrained 10-layer R(2+1)D (configs/mmaction/dsm/dsm_r2plus1d-10_*),
# 16 x 1 at 112, protocol as the R3D-18 config.
_base_ = ['./finetune_r3d-18_1xb4-16x1-45e_ucf101-split1.py']
model = dict(
    backbone=dict(_delete_=True, type='ResNet2Plus1d', depth=18, stage_blocks=(1, 1, 1, 1),
                  pretrained=None, pretrained2d=False, conv_cfg=dict(type='Conv2plus1d'),
                  norm_cfg=dict(type='BN3d'), conv1_kernel=(3, 7, 7), conv1_stride_t=1,
                  pool1_stride_t=1, inflate=(1, 1, 1, 1), spatial_strides=(1, 2, 2, 2),
                  temporal_strides=(1, 2, 2, 2), zero_init_residual=False))
