# DSM with mmaction's C3D (+BN), fixed 16 x 112 x 112 input; it returns the pooled fc7 (4096-d),
# so the Linear->128 head sits on fc7 (the release pools conv5 to 512-d instead). Not for 'tbe'.
_base_ = ['./dsm_bninception-i3d_1xb4-16x4-200e_ucf101-split1.py']
model = dict(
    backbone=dict(_delete_=True, type='C3D', pretrained=None, norm_cfg=dict(type='BN3d'),
                  dropout_ratio=0.0),
    in_channels=4096)
view_pipeline = [
    dict(type='VideoSSLRandomRotation', max_angle=10),
    dict(type='Resize', scale=(-1, 128)),
    dict(type='RandomCrop', size=112),
    dict(type='VideoSSLColorJitter', brightness=0.5, contrast=0.5, saturation=0.25, hue=0.5),
    dict(type='FormatShape', input_format='NCTHW'),
]
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='DecordInit'),
    dict(type='VideoSSLSampleFrames', clip_len=16, frame_interval=1, min_offset=2),
    dict(type='DecordDecode'),
    dict(type='VideoSSLMultiView', transforms=view_pipeline),
    dict(type='PackActionInputs'),
]))
