# DSM on Kinetics-400: 8 GPUs x 32 clips (global 256 as in the release), K 3569, 200 epochs.
_base_ = ['../_base_/video_ssl_pretrain_kinetics400.py']
model = dict(mode='dsm', queue_len=3569)
train_cfg = dict(max_epochs=200)
