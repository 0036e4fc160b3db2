# DSM / BE / TBE pretraining on UCF101 split 1 (videos), official hyper-parameters:
# 16 x 4 clips at 224, SGD lr 0.003 (momentum 0.9, wd 1e-4), lr x0.1 after epochs 120/160/200,
# batch 4 on one GPU, K = 3569, tau 0.07, m 0.999, drop-last.
_base_ = ['./video_ssl_runtime.py']

# under DDP: key-encoder update and enqueue once per optimiser step (also with gradient
# accumulation); ignored on one process
model_wrapper_cfg = dict(type='VideoSSLDistributedDataParallel')
model = dict(
    type='VideoContrastive',
    backbone=dict(type='BNInceptionI3D'),
    in_channels=1024,
    mode='dsm',
    feat_dim=128,
    queue_len=3569,
    momentum=0.999,
    ema_buffers='own',
    contrastive_cfg=dict(temperature=0.07),
    data_preprocessor=dict(type='ActionDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], format_shape='NCTHW'))

dataset_type = 'VideoDataset'
data_root = 'data/ucf101/videos'
ann_file_train = 'data/ucf101/ucf101_train_split_1_videos.txt'
clip_len = 16
view_pipeline = [  # one parameter draw per clip, shared by its frames (release order)
    dict(type='VideoSSLRandomRotation', max_angle=10),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='RandomCrop', size=224),
    dict(type='VideoSSLColorJitter', brightness=0.5, contrast=0.5, saturation=0.25, hue=0.5),
    dict(type='FormatShape', input_format='NCTHW'),
]
train_pipeline = [
    dict(type='DecordInit'),
    dict(type='VideoSSLSampleFrames', clip_len=clip_len, frame_interval=4, min_offset=2),
    dict(type='DecordDecode'),
    dict(type='VideoSSLMultiView', transforms=view_pipeline),
    dict(type='PackActionInputs'),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    drop_last=True,  # the release skips short batches; keeps DDP gathers equal-sized
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, ann_file=ann_file_train,
                 data_prefix=dict(video=data_root), pipeline=train_pipeline))

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=200, val_interval=1000)
val_cfg = None
test_cfg = None
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.003, momentum=0.9, weight_decay=1e-4))
# release: "epoch > milestone" with 1-based epochs -> x0.1 from the 121st / 161st / 201st epoch
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[120, 160, 200], gamma=0.1)]
auto_scale_lr = dict(enable=False, base_batch_size=4)
