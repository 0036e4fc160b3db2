# Nearest-neighbour retrieval R@1/5/10/20/50: split-1 test clips (queries) against train clips
# (gallery), cosine on globally pooled backbone features, no fine-tuning; 10 clips per video,
# their features averaged (multi-clip retrieval), plus the weighted k-NN accuracy (k = 20).
#   python tools/test.py configs/mmaction/video_ssl_eval/retrieval_bninception-i3d_16x4_ucf101-split1.py \
#       work_dirs/<pretraining>/epoch_200.pth
_base_ = ['../_base_/video_ssl_pretrain_ucf101.py']
ann_file_query = 'data/ucf101/ucf101_val_split_1_videos.txt'
ann_file_gallery = 'data/ucf101/ucf101_train_split_1_videos.txt'
data_root = 'data/ucf101/videos'
_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=16, frame_interval=4, num_clips=10, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
test_dataloader = dict(
    batch_size=2, num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ConcatDataset', datasets=[  # queries first, then the gallery
        dict(type='VideoDataset', ann_file=ann_file_query, data_prefix=dict(video=data_root),
             pipeline=_pipeline, test_mode=True),
        dict(type='VideoDataset', ann_file=ann_file_gallery, data_prefix=dict(video=data_root),
             pipeline=_pipeline, test_mode=True)]))
test_evaluator = dict(type='VideoRetrievalMetric', query_ann_file=ann_file_query,
                      topk=(1, 5, 10, 20, 50), knn=(20,))
test_cfg = dict(_delete_=True, type='TestLoop')
