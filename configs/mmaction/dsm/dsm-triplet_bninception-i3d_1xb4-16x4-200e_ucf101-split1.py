# DSM-Triplet: one encoder, no queue, triplet margin 0.5 (intra + inter-video negatives).
_base_ = ['./dsm_bninception-i3d_1xb4-16x4-200e_ucf101-split1.py']
model = dict(mode='dsm_triplet', contrastive_cfg=dict(triplet_margin=0.5))
