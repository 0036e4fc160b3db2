# Retrieval R@k on scene-bias-video: decorrelated test clips against train clips.
#   python tools/test.py configs/mmaction/scene_bias/retrieval_r3d-tiny_8x1_scene-bias-video.py \
#       work_dirs/dsm_r3d-tiny_1xb8-8x1-20e_scene-bias-video/epoch_20.pth
_base_ = ['../_base_/scene_bias_pretrain.py']
_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=8, frame_interval=1, num_clips=1, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 36)),
    dict(type='CenterCrop', crop_size=32),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
_root = 'data/scene-bias-video/'
test_dataloader = dict(
    batch_size=16, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ConcatDataset', datasets=[
        dict(type='VideoDataset', ann_file=_root + 'test_list_videos.txt',
             data_prefix=dict(video=_root + 'videos'), pipeline=_pipeline, test_mode=True),
        dict(type='VideoDataset', ann_file=_root + 'train_list_videos.txt',
             data_prefix=dict(video=_root + 'videos'), pipeline=_pipeline, test_mode=True)]))
test_evaluator = dict(type='VideoRetrievalMetric', query_ann_file=_root + 'test_list_videos.txt',
                      topk=(1, 5, 10, 20, 50))
test_cfg = dict(_delete_=True, type='TestLoop')
