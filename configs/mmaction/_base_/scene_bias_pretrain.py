# Tiny pretraining on the embedded scene-bias-video dataset (python tools/make_data.py
# scene-bias-video): 8-frame clips at 32 px, a 4-stage ResNet3d-18 with 16 base channels and
# one block per stage (128-d), batch 8, K = 24 = a quarter of the 96 default train clips (so a
# query never meets a stale key of its own video; tools/experiments/scene_bias.py sets K to a
# quarter of its larger train split), normalised queue init, m = 0.99. Runs on CPU in tens of
# seconds.
_base_ = ['./video_ssl_runtime.py']
# under DDP: key-encoder update and enqueue once per optimiser step (also with gradient
# accumulation); ignored on one process
model_wrapper_cfg = dict(type='VideoSSLDistributedDataParallel')
model = dict(
    type='VideoContrastive',
    backbone=dict(type='ResNet3d', depth=18, pretrained=None, pretrained2d=False,
                  base_channels=16, stage_blocks=(1, 1, 1, 1), conv1_kernel=(3, 7, 7),
                  with_pool1=False, inflate=(1, 1, 1, 1), spatial_strides=(1, 2, 2, 2),
                  temporal_strides=(1, 1, 1, 1), zero_init_residual=False),
    in_channels=128,
    mode='dsm',
    feat_dim=128,
    queue_len=24,
    momentum=0.99,
    # deviation from the release (random, unnormalised queue): with only ~100 steps and lr 0.03
    # the release init drives the tiny model to a collapsed solution (loss = log(K + 2))
    queue_init='normalized',
    contrastive_cfg=dict(temperature=0.07),
    data_preprocessor=dict(type='ActionDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], format_shape='NCTHW'))
data_root = 'data/scene-bias-video/'
clip_len = 8
view_pipeline = [
    dict(type='VideoSSLRandomRotation', max_angle=10),
    dict(type='Resize', scale=(-1, 36)),
    dict(type='RandomCrop', size=32),
    dict(type='VideoSSLColorJitter', brightness=0.3, contrast=0.3, saturation=0.2, hue=0.05),
    dict(type='FormatShape', input_format='NCTHW'),
]
train_pipeline = [
    dict(type='DecordInit'),
    dict(type='VideoSSLSampleFrames', clip_len=clip_len, frame_interval=1, min_offset=2),
    dict(type='DecordDecode'),
    dict(type='VideoSSLMultiView', transforms=view_pipeline),
    dict(type='PackActionInputs'),
]
train_dataloader = dict(
    batch_size=8, num_workers=0, drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='VideoDataset', ann_file=data_root + 'train_list_videos.txt',
                 data_prefix=dict(video=data_root + 'videos'), pipeline=train_pipeline))
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=20, val_interval=1000)
val_cfg = None
test_cfg = None
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.03, momentum=0.9, weight_decay=1e-4))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, T_max=20, eta_min=0.0)]
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=5, max_keep_ckpts=1))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
