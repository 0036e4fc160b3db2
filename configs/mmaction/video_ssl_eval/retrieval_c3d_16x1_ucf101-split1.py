# Retrieval R@k and k-NN with a DSM / BE-pretrained BN-C3D on its pooled conv5 (512-d) features,
# the papers' retrieval setting (10 clips of 16 x 1 at 112 per video, averaged), as
# retrieval_r3d-18_16x1_ucf101-split1.py.
_base_ = ['./retrieval_r3d-18_16x1_ucf101-split1.py']
model = dict(backbone=dict(_delete_=True, type='BNC3D'), in_channels=512)
