# Linear evaluation (not in the releases): frozen pretrained backbone (BN in eval mode),
# a linear classifier on globally pooled features, 16 x 4 clips.
_base_ = ['./finetune_bninception-i3d_1xb4-64x1-45e_ucf101-split1.py']
model = dict(backbone=dict(frozen=True), cls_head=dict(dropout_ratio=0.0))
_clip = dict(clip_len=16, frame_interval=4)
train_dataloader = dict(batch_size=32, dataset=dict(pipeline=[
    dict(type='DecordInit'),
    dict(type='SampleFrames', num_clips=1, **_clip),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='RandomCrop', size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]))
val_dataloader = dict(dataset=dict(pipeline=[
    dict(type='DecordInit'),
    dict(type='SampleFrames', num_clips=1, test_mode=True, **_clip),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]))
test_dataloader = dict(dataset=dict(pipeline=[
    dict(type='DecordInit'),
    dict(type='SampleFrames', num_clips=10, test_mode=True, **_clip),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]))
train_cfg = dict(max_epochs=50)
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.0))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, T_max=50, eta_min=0.0)]
