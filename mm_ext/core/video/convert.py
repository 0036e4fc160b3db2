"""Key mapping from the official DSM / BE (TBE) checkpoint layouts to this project's modules.

The releases (FingerRec/DSM-decoupling-scene-motion, FingerRec/BE) save
``{'model': state_dict, ...}`` of ``nn.DataParallel(TCN(base_model))``, i.e.
keys ``module.base_model.<backbone key>``, with the projection head inside the
backbone as ``id_head.2.{weight,bias}`` (AdaptiveAvgPool3d, Flatten, Linear,
Normalize). Fine-tuned checkpoints hold a classifier instead of ``id_head``.
Only the query encoder is saved (the key encoder never is).

==============  ==========================================  ======================================
arch            official key (after the prefixes)            this project
==============  ==========================================  ======================================
i3d             conv3d_1a_7x7.{conv3d,batch3d}.*            stem.0.{0,1}.*  (``BNInceptionI3D``)
                conv3d_2b_1x1 / conv3d_2c_3x3               stem.2 / stem.3
                mixed_XY.branch_0.{conv3d,batch3d}          blocks.mixed_XY.b0.{0,1}
                mixed_XY.branch_{1,2}.{0,1}.{conv3d,batch3d} blocks.mixed_XY.b{1,2}.{0,1}.{0,1}
                mixed_XY.branch_3.1.{conv3d,batch3d}        blocks.mixed_XY.b3.1.{0,1}
c3d             conv1 / bn1 ... conv5b / bn5b               same names (``BNC3D``)
r3d             conv1 / bn1                                  conv1.conv / conv1.bn (mmaction ResNet3d)
                layerI.J.conv{1,2} / bn{1,2}                 layerI.J.conv{1,2}.conv / .bn
                layerI.J.downsample.{0,1}                    layerI.J.downsample.{conv,bn}
r2p1d           conv1.{spatial_conv,bn,temporal_conv}        conv1.conv.{conv_s,bn_s,conv_t}
                bn1                                          conv1.bn
                convN.block1 / convN.blocks.I                layer{N-1}.0 / layer{N-1}.{I+1}
                  conv{1,2}.{spatial_conv,bn,temporal_conv}    conv{1,2}.conv.{conv_s,bn_s,conv_t}
                  bn{1,2}                                      conv{1,2}.bn
                  downsampleconv.* / downsamplebn              downsample.conv.* / downsample.bn
all             id_head.2.{weight,bias}                      neck.fc.{weight,bias}
contrast        memory (K x 128, MemoryMoCo)                 queue (K x 128), queue_ptr = 0
==============  ==========================================  ======================================

``r2p1d`` loads into ``ResNet2Plus1dRelease`` (mm_ext.mmaction.video_ssl): mmaction2's
``ResNet2Plus1d`` gives the 1x1x1 shortcut convs other middle widths (54 / 109 / 219
instead of the release's 42 / 85 / 170) and a stem max-pool the release lacks.

The memory queue (``convert_official_queue``): the release's ``MemoryMoCo`` keeps
rows = keys like ``VideoContrastive.queue``; its write position is a Python
attribute that the checkpoint does not hold, so the pointer restarts at 0 (any
position is a valid FIFO state; only the order in which old keys are replaced
changes). The CMC memory banks (``memory_l`` / ``memory_ab``, not used by any
script) are refused.

Ignored: the fine-tuning classifiers (``linear``, ``cp``, ``conv3d_0c_1x1_custom``)
and the unused I3D inpainting / binary-classifier modules
(``painting_Gen``, ``painting_Dis``, ``projection``).
"""
import re
from typing import Dict, Iterable, Tuple

import torch

__all__ = ['ARCHES', 'strip_official_prefixes', 'convert_official_key',
           'convert_official_state_dict', 'convert_official_queue']

ARCHES = ('i3d', 'c3d', 'r3d', 'r2p1d')
_PREFIXES = ('module.', 'base_model.')
_IGNORED = ('linear.', 'cp.', 'conv3d_0c_1x1_custom.', 'painting_Gen.', 'painting_Dis.',
            'projection.', 'fc.')
_I3D_UNIT = {'conv3d': '0', 'batch3d': '1'}
_I3D_STEM = {'conv3d_1a_7x7': 'stem.0', 'conv3d_2b_1x1': 'stem.2', 'conv3d_2c_3x3': 'stem.3'}


def strip_official_prefixes(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Remove the DataParallel ``module.`` and the ``TCN`` wrapper's ``base_model.`` prefixes."""
    out = {}
    for k, v in state_dict.items():
        changed = True
        while changed:
            changed = False
            for p in _PREFIXES:
                if k.startswith(p):
                    k, changed = k[len(p):], True
        out[k] = v
    return out


def _i3d_key(k: str) -> str:
    parts = k.split('.')
    if parts[0] in _I3D_STEM and len(parts) == 3 and parts[1] in _I3D_UNIT:
        return f'{_I3D_STEM[parts[0]]}.{_I3D_UNIT[parts[1]]}.{parts[2]}'
    m = re.fullmatch(r'(mixed_\d[a-z])\.branch_(\d)\.(?:(\d)\.)?(conv3d|batch3d)\.(\w+)', k)
    if m:
        block, branch, sub, unit, leaf = m.groups()
        if branch == '0' and sub is None:
            return f'blocks.{block}.b0.{_I3D_UNIT[unit]}.{leaf}'
        if branch in ('1', '2') and sub in ('0', '1'):
            return f'blocks.{block}.b{branch}.{sub}.{_I3D_UNIT[unit]}.{leaf}'
        if branch == '3' and sub == '1':
            return f'blocks.{block}.b3.1.{_I3D_UNIT[unit]}.{leaf}'
    raise KeyError(k)


def _c3d_key(k: str) -> str:
    if re.fullmatch(r'(conv|bn)(1|2|3a|3b|4a|4b|5a|5b)\.\w+', k):
        return k
    raise KeyError(k)


def _r3d_key(k: str) -> str:
    m = re.fullmatch(r'(conv1|bn1)\.(\w+)', k)
    if m:
        return f"conv1.{'conv' if m.group(1) == 'conv1' else 'bn'}.{m.group(2)}"
    m = re.fullmatch(r'(layer\d\.\d+)\.(conv|bn)(\d)\.(\w+)', k)
    if m:
        blk, kind, i, leaf = m.groups()
        return f"{blk}.conv{i}.{'conv' if kind == 'conv' else 'bn'}.{leaf}"
    m = re.fullmatch(r'(layer\d\.\d+)\.downsample\.([01])\.(\w+)', k)
    if m:
        blk, i, leaf = m.groups()
        return f"{blk}.downsample.{'conv' if i == '0' else 'bn'}.{leaf}"
    raise KeyError(k)


_R2P1D_UNIT = {'spatial_conv': 'conv_s', 'bn': 'bn_s', 'temporal_conv': 'conv_t'}


def _r2p1d_key(k: str) -> str:
    m = re.fullmatch(r'conv1\.(spatial_conv|bn|temporal_conv)\.(\w+)', k)
    if m:
        return f'conv1.conv.{_R2P1D_UNIT[m.group(1)]}.{m.group(2)}'
    m = re.fullmatch(r'bn1\.(\w+)', k)
    if m:
        return f'conv1.bn.{m.group(1)}'
    m = re.fullmatch(r'conv([2-5])\.(block1|blocks\.(\d+))\.(.+)', k)
    if not m:
        raise KeyError(k)
    stage, _, extra, rest = m.groups()
    blk = f'layer{int(stage) - 1}.{0 if extra is None else int(extra) + 1}'
    m = re.fullmatch(r'conv([12])\.(spatial_conv|bn|temporal_conv)\.(\w+)', rest)
    if m:
        return f'{blk}.conv{m.group(1)}.conv.{_R2P1D_UNIT[m.group(2)]}.{m.group(3)}'
    m = re.fullmatch(r'bn([12])\.(\w+)', rest)
    if m:
        return f'{blk}.conv{m.group(1)}.bn.{m.group(2)}'
    m = re.fullmatch(r'downsampleconv\.(spatial_conv|bn|temporal_conv)\.(\w+)', rest)
    if m:
        return f'{blk}.downsample.conv.{_R2P1D_UNIT[m.group(1)]}.{m.group(2)}'
    m = re.fullmatch(r'downsamplebn\.(\w+)', rest)
    if m:
        return f'{blk}.downsample.bn.{m.group(1)}'
    raise KeyError(k)


_MAPPERS = {'i3d': _i3d_key, 'c3d': _c3d_key, 'r3d': _r3d_key, 'r2p1d': _r2p1d_key}


def convert_official_key(key: str, arch: str) -> Tuple[str, str]:
    """Map one official key (prefixes already stripped).

    Returns:
        tuple[str, str]: ('backbone' | 'neck' | 'ignored', new key within that part).

    Raises:
        KeyError: the key is not part of the official ``arch`` layout.
    """
    if arch not in ARCHES:
        raise ValueError(f'convert: arch must be one of {ARCHES}, got {arch!r}')
    m = re.fullmatch(r'id_head\.2\.(weight|bias)', key)
    if m:
        return 'neck', f'fc.{m.group(1)}'
    if key.startswith(_IGNORED):
        return 'ignored', key
    return 'backbone', _MAPPERS[arch](key)


def convert_official_state_dict(state_dict: Dict[str, torch.Tensor], arch: str,
                                with_key_encoder: bool = True,
                                ignore: Iterable[str] = ()) -> Dict[str, torch.Tensor]:
    """Official DSM / BE state dict -> ``VideoContrastive`` (or ``Recognizer3D``) state dict.

    Args:
        state_dict (dict): official model state dict (with or without the
            ``module.`` / ``base_model.`` prefixes).
        arch (str): 'i3d' (BN-Inception, -> ``BNInceptionI3D``), 'c3d'
            (-> ``BNC3D``), 'r3d' (Hara-style 3D ResNet -> mmaction ``ResNet3d``) or
            'r2p1d' (-> ``ResNet2Plus1dRelease``).
        with_key_encoder (bool): also write ``key_backbone.*`` / ``key_neck.*``
            as copies of the query encoder (the release never saved the key
            encoder; MoCo starts it as a copy). Defaults to True.
        ignore (Iterable[str]): extra key prefixes to drop.

    Returns:
        dict: keys ``backbone.*``, ``neck.fc.*`` (when the checkpoint has the
        projection head) and, optionally, ``key_backbone.*`` / ``key_neck.*``.

    Raises:
        KeyError: keys that belong to no known part of the layout, listed.
    """
    out: Dict[str, torch.Tensor] = {}
    unknown = []
    for k, v in strip_official_prefixes(state_dict).items():
        if any(k.startswith(p) for p in ignore):
            continue
        try:
            part, new = convert_official_key(k, arch)
        except KeyError:
            unknown.append(k)
            continue
        if part == 'ignored':
            continue
        out[f'{part}.{new}'] = v
        if with_key_encoder:
            out[f'key_{part}.{new}'] = v.clone()
    if unknown:
        raise KeyError(f'convert ({arch}): {len(unknown)} keys are not in the official {arch} '
                       f'layout, e.g. {unknown[:5]}; check --arch or pass ignore prefixes')
    if not any(k.startswith('backbone.') for k in out):
        raise KeyError(f'convert ({arch}): no backbone weights found')
    return out


def convert_official_queue(contrast: Dict[str, torch.Tensor], queue_ptr: int = 0
                           ) -> Dict[str, torch.Tensor]:
    """The release's ``MemoryMoCo`` state (checkpoint entry ``'contrast'``) -> queue buffers.

    Args:
        contrast (dict): ``{'params': ..., 'memory': (K, D)}`` as the release saves it
            (``module.`` prefixes are accepted).
        queue_ptr (int): write position to resume from (the release does not save
            it). Defaults to 0.

    Returns:
        dict: ``{'queue': (K, D) float tensor, 'queue_ptr': (1,) int64}``, the
        buffers of ``VideoContrastive`` (its ``queue_len`` must be K).

    Raises:
        KeyError: no MoCo memory in ``contrast`` (e.g. a CMC ``NCEAverage`` bank).
        ValueError: ``memory`` is not 2-D or ``queue_ptr`` is outside [0, K).
    """
    sd = strip_official_prefixes(contrast)
    if 'memory' not in sd:
        found = sorted(sd)[:5]
        raise KeyError(f"convert queue: no 'memory' (MemoryMoCo queue) in the checkpoint's "
                       f"'contrast' entry (found {found}); CMC memory banks (memory_l / "
                       'memory_ab) are not a MoCo queue and are not converted')
    mem = sd['memory']
    if mem.dim() != 2:
        raise ValueError(f"convert queue: 'memory' must be (K, D), got {tuple(mem.shape)}")
    if not 0 <= queue_ptr < mem.shape[0]:
        raise ValueError(f'convert queue: queue_ptr must be in [0, {mem.shape[0]}), '
                         f'got {queue_ptr}')
    return {'queue': mem.detach().clone().float(),
            'queue_ptr': torch.tensor([queue_ptr], dtype=torch.long)}
