# Pretraining on Kinetics-400 (videos decoded on the fly); anchor and negative start >= 4
# frames apart; single ImageNet normalisation (the release also rescales to [-1, 1] first).
_base_ = ['./video_ssl_pretrain_ucf101.py']

data_root = 'data/kinetics400/videos_train'
ann_file_train = 'data/kinetics400/kinetics400_train_list_videos.txt'
train_pipeline = [
    dict(type='DecordInit'),
    dict(type='VideoSSLSampleFrames', clip_len=16, frame_interval=4, min_offset=4),
    dict(type='DecordDecode'),
    dict(type='VideoSSLMultiView', transforms={{_base_.view_pipeline}}),
    dict(type='PackActionInputs'),
]
train_dataloader = dict(
    batch_size=32, num_workers=8,
    dataset=dict(ann_file=ann_file_train, data_prefix=dict(video=data_root),
                 pipeline=train_pipeline))
