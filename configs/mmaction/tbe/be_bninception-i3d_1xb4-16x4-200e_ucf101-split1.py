# BE as released ("be_release"): background erasing + InfoNCE only, no TCR.
_base_ = ['../_base_/video_ssl_pretrain_ucf101.py']
model = dict(mode='be', contrastive_cfg=dict(be_max_lambda=0.3))
