# DSM with the release's 10-layer R(2+1)D (stage blocks (1, 1, 1, 1)), 512-d.
_base_ = ['./dsm_bninception-i3d_1xb4-16x4-200e_ucf101-split1.py']
model = dict(
    # the release's layout (mm_ext ResNet2Plus1dRelease: mmaction2's ResNet2Plus1d with the
    # release's 1x1x1 shortcut widths and no stem pool), so converted official checkpoints
    # (tools/convert_dsm_be_checkpoint.py --arch r2p1d) load strictly
    backbone=dict(_delete_=True, type='ResNet2Plus1dRelease', depth=18, stage_blocks=(1, 1, 1, 1),
                  conv1_kernel=(3, 7, 7), with_pool1=False, spatial_strides=(1, 2, 2, 2),
                  temporal_strides=(1, 2, 2, 2)),
    in_channels=512)
