# Parity option (spec decision 6): BE as released on Kinetics-400, including the release's
# double normalisation - pixels scaled to [-1, 1] and then ImageNet-normalised again. The two
# steps compose into one affine map, so it is ActionDataPreprocessor's mean / std:
# mean' = 127.5 (1 + m), std' = 127.5 s with the ImageNet m, s in [0, 1] units
# (mm_ext.core.video.double_normalization_mean_std(); checked by the config test).
_base_ = ['./tbe_bninception-i3d_8xb8-16x4-50e_kinetics400.py']
model = dict(
    mode='be',
    data_preprocessor=dict(mean=[189.3375, 185.64, 179.265], std=[29.1975, 28.56, 28.6875]))
