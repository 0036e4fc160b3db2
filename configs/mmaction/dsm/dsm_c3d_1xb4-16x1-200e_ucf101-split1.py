# DSM with the release's C3D: BN after every conv, conv5b globally pooled to 512-d (BNC3D),
# 16 x 1 clips at 112 x 112. The pooled conv5 feature is what the papers' retrieval tables use.
_base_ = ['./dsm_bninception-i3d_1xb4-16x4-200e_ucf101-split1.py']
model = dict(backbone=dict(_delete_=True, type='BNC3D'), in_channels=512)
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
