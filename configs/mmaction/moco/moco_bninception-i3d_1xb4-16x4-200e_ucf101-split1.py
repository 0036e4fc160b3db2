# MoCo baseline of the DSM / BE papers: no disturbance; the extra negative logit is a clip of
# another video (the next sample's shifted window).
_base_ = ['../_base_/video_ssl_pretrain_ucf101.py']
model = dict(mode='moco')
