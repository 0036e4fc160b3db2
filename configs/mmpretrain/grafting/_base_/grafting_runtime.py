# Runtime shared by every grafting / DGD config: the ring exchange hook, the per-member accuracy,
# the rank-mode model wrapper (used only under tools/dist_train.sh) and best-by-test checkpoints.
default_scope = 'mmpretrain'
custom_imports = dict(imports=['mm_ext.mmpretrain'], allow_failed_imports=False)

custom_hooks = [dict(type='GraftingHook', evaluate='pre', a=0.4, c=500.0, driver='structural', level='layer')]
model_wrapper_cfg = dict(type='GraftingRankWrapper')  # one network per rank, no gradient all-reduce

val_evaluator = dict(type='GraftingAccuracy')
test_evaluator = val_evaluator
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # official selection: the best epoch by test accuracy (reported with the final epoch too)
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2, save_best='accuracy/top1', rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
)
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
