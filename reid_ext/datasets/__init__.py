"""torchreid datasets of reid_ext and per-image side labels (viewpoints)."""
from .side_labels import SideLabels, load_viewpoint_labels
from .synth_ped import SynthPed, SynthPedStyle1

__all__ = ['SideLabels', 'load_viewpoint_labels', 'SynthPed', 'SynthPedStyle1']
