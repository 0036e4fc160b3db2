# Fine-tuning a DSM / BE-pretrained R3D-18 (configs/mmaction/dsm/dsm_r3d-18_*): the release's
# protocol (batch 4, SGD 1e-3, wd 1e-8, x0.3 at 10/20/25/30/35/40, 45 epochs, split 1) on
# 16 x 1 clips at 112 x 112, the input of the papers' R3D / R(2+1)D / C3D rows.
_base_ = ['./finetune_bninception-i3d_1xb4-64x1-45e_ucf101-split1.py']
model = dict(
    backbone=dict(_delete_=True, type='ResNet3d', depth=18, pretrained=None, pretrained2d=False,
                  conv1_kernel=(7, 7, 7), conv1_stride_t=1, pool1_stride_t=2,
                  inflate=(1, 1, 1, 1), spatial_strides=(1, 2, 2, 2),
                  temporal_strides=(1, 2, 2, 2), zero_init_residual=False),
    cls_head=dict(in_channels=512))
_clip = dict(clip_len=16, frame_interval=1)
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='DecordInit'),
    dict(type='SampleFrames', num_clips=1, **_clip),
    dict(type='DecordDecode'),
    dict(type='VideoSSLRandomRotation', max_angle=10),
    dict(type='Resize', scale=(-1, 128)),
    dict(type='RandomCrop', size=112),
    dict(type='VideoSSLColorJitter', brightness=0.5, contrast=0.5, saturation=0.25, hue=0.5),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]))
val_dataloader = dict(dataset=dict(pipeline=[
    dict(type='DecordInit'),
    dict(type='SampleFrames', num_clips=1, test_mode=True, **_clip),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 128)),
    dict(type='CenterCrop', crop_size=112),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]))
test_dataloader = dict(dataset=dict(pipeline=[
    dict(type='DecordInit'),
    dict(type='SampleFrames', num_clips=10, test_mode=True, **_clip),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 128)),
    dict(type='CenterCrop', crop_size=112),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]))
