# Supervised reference on scene-bias-video: the pretraining backbone trained end to end with
# labels on the (scene-biased) train split, same clip sampling and augmentation as pretraining.
_base_ = ['./linear_r3d-tiny_1xb16-8x1-30e_scene-bias-video.py']
model = dict(backbone=dict(frozen_stages=-1, norm_eval=False),
             cls_head=dict(dropout_ratio=0.5))
_train = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=8, frame_interval=1, num_clips=1),
    dict(type='DecordDecode'),
    dict(type='VideoSSLRandomRotation', max_angle=10),
    dict(type='Resize', scale=(-1, 36)),
    dict(type='RandomCrop', size=32),
    dict(type='VideoSSLColorJitter', brightness=0.3, contrast=0.3, saturation=0.2, hue=0.05),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
train_dataloader = dict(batch_size=8, drop_last=True, dataset=dict(pipeline=_train))
train_cfg = dict(max_epochs=20, val_begin=20, val_interval=20)
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.03, momentum=0.9, weight_decay=1e-4))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, T_max=20, eta_min=0.0)]
default_hooks = dict(checkpoint=dict(interval=20))
