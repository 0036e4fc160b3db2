# Ablation "MoCo + intra-video negative" on scene-bias-video: the moco baseline, but its extra
# negative is this video's own shifted window (what DSM and BE get), not another video's.
_base_ = ['../_base_/scene_bias_pretrain.py']
model = dict(mode='moco', contrastive_cfg=dict(moco_negative='intra'))
