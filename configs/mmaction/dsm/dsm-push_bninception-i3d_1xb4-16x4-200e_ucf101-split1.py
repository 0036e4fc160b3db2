# DSM with the released local push warp (the op behind the README numbers), vectorised.
_base_ = ['./dsm_bninception-i3d_1xb4-16x4-200e_ucf101-split1.py']
model = dict(contrastive_cfg=dict(spatial_warp='push'))
