# Retrieval R@1/5/10/20/50 and k-NN accuracy with a DSM / BE-pretrained R3D-18: split-1 test
# videos (queries) against train videos (gallery), cosine on globally pooled conv5 features;
# 10 clips of 16 x 1 at 112 per video, their features averaged into one per video.
#   python tools/test.py configs/mmaction/video_ssl_eval/retrieval_r3d-18_16x1_ucf101-split1.py \
#       work_dirs/dsm_r3d-18_1xb4-16x4-200e_ucf101-split1/epoch_200.pth
_base_ = ['../dsm/dsm_r3d-18_1xb4-16x4-200e_ucf101-split1.py']
ann_file_query = 'data/ucf101/ucf101_val_split_1_videos.txt'
ann_file_gallery = 'data/ucf101/ucf101_train_split_1_videos.txt'
data_root = 'data/ucf101/videos'
_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=16, frame_interval=1, num_clips=10, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 128)),
    dict(type='CenterCrop', crop_size=112),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
test_dataloader = dict(
    batch_size=4, num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ConcatDataset', datasets=[  # queries first, then the gallery
        dict(type='VideoDataset', ann_file=ann_file_query, data_prefix=dict(video=data_root),
             pipeline=_pipeline, test_mode=True),
        dict(type='VideoDataset', ann_file=ann_file_gallery, data_prefix=dict(video=data_root),
             pipeline=_pipeline, test_mode=True)]))
test_evaluator = dict(type='VideoRetrievalMetric', query_ann_file=ann_file_query,
                      topk=(1, 5, 10, 20, 50), knn=(20,))
test_cfg = dict(_delete_=True, type='TestLoop')
