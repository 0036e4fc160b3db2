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
all             id_head.2.{weight,bias}                      neck.fc.{weight,bias}
==============  ==========================================  ======================================

Ignored: the fine-tuning classifiers (``linear``, ``cp``, ``conv3d_0c_1x1_custom``)
and the unused I3D inpainting / binary-classifier modules
(``painting_Gen``, ``painting_Dis``, ``projection``).
"""
import re
from typing import Dict, Iterable, Tuple

import torch

__all__ = ['ARCHES', 'strip_official_prefixes', 'convert_official_key', 'convert_official_state_dict']

ARCHES = ('i3d', 'c3d', 'r3d')
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


_MAPPERS = {'i3d': _i3d_key, 'c3d': _c3d_key, 'r3d': _r3d_key}


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
            (-> ``BNC3D``) or 'r3d' (Hara-style 3D ResNet -> mmaction ``ResNet3d``).
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
