# Fine-tuning a DSM / BE-pretrained BN-C3D (configs/mmaction/dsm/dsm_c3d_*), 16 x 1 at 112,
# protocol as the R3D-18 config.
_base_ = ['./finetune_r3d-18_1xb4-16x1-45e_ucf101-split1.py']
model = dict(backbone=dict(_delete_=True, type='BNC3D'))
