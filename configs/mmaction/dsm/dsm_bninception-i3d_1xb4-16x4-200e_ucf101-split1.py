# DSM (arXiv 2009.05757): TPS scene disturbance on the query, shifted intra-video negative.
# Official: I3D, UCF101 split 1, 16x4 @ 224, batch 4, K 3569, SGD 0.003.
_base_ = ['../_base_/video_ssl_pretrain_ucf101.py']
model = dict(mode='dsm', contrastive_cfg=dict(spatial_warp='tps', tps_grid=5, tps_jitter=0.1))
