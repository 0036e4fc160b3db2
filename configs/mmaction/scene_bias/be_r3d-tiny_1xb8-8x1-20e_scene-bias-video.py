# BE without TCR (the release's BE: InfoNCE only, no time reversal) on scene-bias-video (tiny,
# CPU): see configs/mmaction/_base_/scene_bias_pretrain.py
_base_ = ['../_base_/scene_bias_pretrain.py']
model = dict(mode='be')
