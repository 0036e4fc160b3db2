# NOH-NMS (arXiv 2007.13376) on CrowdHuman: Faster R-CNN R50-FPN + Nearby Objects Hallucinator.
# Official setup (spec noh-nms.md section 5): caffe-style ResNet-50, FPN with BN, anchors
# 32..512 with ratios (h/w) 1/2/3, 512 RoIs at 0.5 positives, shorter side 800 / max 1400,
# 30 epochs (28,125 iterations at batch 16), lr 0.04, test score > 0.05, NMS 0.5, 200 per image.
# Paper: AP 89.0 / Recall 92.9 / MR^-2 43.9 (official weights 88.8 / 92.6 / 43.7).
# Documented difference: mmdet's per-level RPN nms_pre (2400 / 1200 per level ~ 12000 / 6000 over
# all levels) instead of the official top-k over all levels together (exact official RPN:
# noh-nms-rpn-topk-all_faster-rcnn_r50_fpn_8xb2-30e_crowdhuman.py). Boxes are decoded without
# clipping (official) by bbox_coder.clip_border=False, in this head and in the Greedy baseline alike.
# Official weights: tools/convert_noh_detectron2.py.
_base_ = ['mmdet::_base_/default_runtime.py']
custom_imports = dict(imports=['mm_ext.mmdet'], allow_failed_imports=False)

model = dict(
    type='FasterRCNN',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[103.530, 116.280, 123.675],
        std=[1.0, 1.0, 1.0],
        bgr_to_rgb=False,
        pad_size_divisor=64),
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        style='caffe',
        # detectron2 MSRA weights; no network on project machines: pre-place them in the
        # torch hub cache (or set init_cfg=None for a random-init run)
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://detectron2/resnet50_caffe')),
    neck=dict(
        type='NOHAvgPoolFPN',  # official P6 = 2x2 average pooling of P5 (mmdet 'FPN': 1x1 max-pool)
        in_channels=[256, 512, 1024, 2048],
        out_channels=256,
        num_outs=5,
        norm_cfg=dict(type='BN', requires_grad=True)),
    rpn_head=dict(
        type='RPNHead',
        in_channels=256,
        feat_channels=256,
        anchor_generator=dict(
            type='AnchorGenerator', scales=[8], ratios=[1.0, 2.0, 3.0], strides=[4, 8, 16, 32, 64]),
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder', target_means=[0.0, 0.0, 0.0, 0.0], target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0)),
    roi_head=dict(
        type='NOHRoIHead',
        bbox_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0, aligned=True),
            out_channels=256,
            featmap_strides=[4, 8, 16, 32]),
        bbox_head=dict(
            type='NOHBBoxHead',
            in_channels=256,
            fc_out_channels=1024,
            noh_fc_out_channels=1024,
            roi_feat_size=7,
            num_classes=1,
            bbox_coder=dict(
                type='DeltaXYWHBBoxCoder', target_means=[0.0, 0.0, 0.0, 0.0], target_stds=[0.1, 0.1, 0.2, 0.2],
                clip_border=False),  # official: out-of-image boxes allowed (detections and hallucinations)
            reg_class_agnostic=False,
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0),
            noh_bbox_iou_thr=0.4,
            noh_uniform_divisor=True,
            loss_noh_score=dict(type='SmoothL1Loss', beta=0.02, loss_weight=1.0),
            loss_noh_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))),
    train_cfg=dict(
        rpn=dict(
            assigner=dict(
                type='MaxIoUAssigner', pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3,
                match_low_quality=True, ignore_iof_thr=-1),
            sampler=dict(type='RandomSampler', num=256, pos_fraction=0.5, neg_pos_ub=-1,
                         add_gt_as_proposals=False),
            allowed_border=-1,
            pos_weight=-1,
            debug=False),
        rpn_proposal=dict(nms_pre=2400, max_per_img=2000, nms=dict(type='nms', iou_threshold=0.7),
                          min_bbox_size=2),
        rcnn=dict(
            # official IoA rule for ignore regions (CrowdHuman 'mask' boxes)
            assigner=dict(
                type='NOHIoAIgnoreAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.5,
                match_low_quality=False),
            sampler=dict(type='RandomSampler', num=512, pos_fraction=0.5, neg_pos_ub=-1,
                         add_gt_as_proposals=True),
            pos_weight=-1,
            debug=False)),
    test_cfg=dict(
        rpn=dict(nms_pre=1200, max_per_img=1000, nms=dict(type='nms', iou_threshold=0.7), min_bbox_size=2),
        rcnn=dict(
            score_thr=0.05,
            # mmdet types ('nms', 'soft_nms' + method, class_agnostic, split_thr) or the crowd family:
            # 'noh_nms', or 'crowd_nms' with method='noh'|'greedy'|'adaptive'|'soft_linear'|'soft_gaussian'
            # (keys: mm_ext/mmdet/noh/crowd_nms.py); the first pick is always kept (official loop)
            nms=dict(type='noh_nms', iou_threshold=0.5, noh_score_thr=0.3, sigma=0.2, flag_thr=0.6,
                     min_score=0.01),
            max_per_img=200)))

dataset_type = 'CrowdHumanDataset'
data_root = 'data/CrowdHuman/'
backend_args = None
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(1400, 800), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=(1400, 800), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotation_train.odgt',
        data_prefix=dict(img='Images/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=2),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),  # CrowdHumanMetric asserts the ODGT order
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotation_val.odgt',
        data_prefix=dict(img='Images/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='CrowdHumanRecallMetric',
    ann_file=data_root + 'annotation_val.odgt',
    metric=['AP', 'MR', 'JI', 'Recall'],
    backend_args=backend_args)
test_evaluator = val_evaluator

# 30 epochs of 15,000 images at batch 16 = 28,125 iterations; LR drops at epochs 20 and 26
# (iterations 18,750 / 24,375); linear warm-up over 800 iterations from 0.1 x.
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=30, val_interval=30)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=800),
    dict(type='MultiStepLR', begin=0, end=30, by_epoch=True, milestones=[20, 26], gamma=0.1),
]
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.04, momentum=0.9, weight_decay=0.0001))
# lr 0.04 is for 8 GPUs x 2 images; other batch sizes: tools/train.py --auto-scale-lr
auto_scale_lr = dict(enable=False, base_batch_size=16)
randomness = dict(seed=11301414)
