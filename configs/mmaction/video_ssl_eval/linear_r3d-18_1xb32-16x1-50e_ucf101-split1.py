# Linear evaluation of a DSM / BE-pretrained r3d-18: frozen backbone (BN in eval mode), a linear
# classifier on globally pooled features, 16 x 1 clips at 112, 50 epochs cosine (not in the
# releases; the usual protocol of later papers).
_base_ = ['./finetune_r3d-18_1xb4-16x1-45e_ucf101-split1.py']
model = dict(backbone=dict(frozen_stages=4, norm_eval=True), cls_head=dict(dropout_ratio=0.0))
train_dataloader = dict(batch_size=32)
train_cfg = dict(max_epochs=50)
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.0))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, T_max=50, eta_min=0.0)]
