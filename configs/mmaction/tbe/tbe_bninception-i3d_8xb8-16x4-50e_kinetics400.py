# TBE on Kinetics-400 as in the BE script: 8 GPUs, global batch 64, K = 65,536, 50 epochs
# (the lr 0.003 is therefore never decayed).
_base_ = ['../_base_/video_ssl_pretrain_kinetics400.py']
model = dict(mode='tbe', queue_len=65536)
train_dataloader = dict(batch_size=8)
train_cfg = dict(max_epochs=50)
