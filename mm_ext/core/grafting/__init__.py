"""Filter grafting and DGD (torch-only core).

`Filter Grafting for Deep Neural Networks <https://arxiv.org/abs/2001.05868>`_ (CVPR 2020) and
`DGD <https://arxiv.org/abs/2004.12311>`_ (grafting + online distillation; no official code, the
defaults here are this project's, see the spec Part C.3). Entropy and coefficient, driver detection,
layer- and filter-level graft of state dicts, invalid-filter statistics, the DGD loss and the
per-network learning-rate factors.
"""
from .entropy import graft_coefficient, layer_entropy
from .drivers import conv_bn_pairs, reference_drivers, structural_drivers
from .graft import (filter_coefficients, graft_state_dict, layer_coefficients, ring_graft)
from .invalid import invalid_filter_stats
from .dgd import dgd_loss, dgd_teacher_logits
from .lr import dlr_factors
from .ring import ring_exchange

__all__ = [
    'layer_entropy', 'graft_coefficient', 'structural_drivers', 'reference_drivers', 'conv_bn_pairs',
    'layer_coefficients', 'filter_coefficients', 'graft_state_dict', 'ring_graft', 'invalid_filter_stats',
    'dgd_loss', 'dgd_teacher_logits', 'dlr_factors', 'ring_exchange'
]
