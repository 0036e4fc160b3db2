# TBE (arXiv 2009.05769): background erasing (lambda ~ U(0, 0.3), same-clip static frame) on the
# query, time-reversed, plus the temporal consistency regulariser (weight 1, unverified).
_base_ = ['../_base_/video_ssl_pretrain_ucf101.py']
model = dict(mode='tbe', contrastive_cfg=dict(be_max_lambda=0.3, tcr_weight=1.0, tcr_in_nce=True))
