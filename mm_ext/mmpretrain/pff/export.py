"""Export a pruned :class:`PFFImageClassifier` as a plain torch model + a stock mmpretrain config.

The plain backbone is the pruned backbone traced with ``torch.fx`` (ordinary ``nn.Conv2d`` /
``nn.BatchNorm2d`` / ... modules, channels removed, kernels cropped; custom containers such as
the CIFAR backbones or mmpretrain blocks are inlined into generated code), pickled with
``torch.save``. The config builds it with ``type='torch.load'`` (mmengine resolves a dotted
import path as a type), so stock mmpretrain builds, trains (DDP included) and evaluates the
pruned network without importing mm_ext.
"""
import copy
import os
import tempfile
from pathlib import Path
from typing import Tuple

import torch
import torch.nn as nn
from torch.fx import GraphModule, Tracer

__all__ = ['plain_backbone', 'write_plain_export']


class _PlainTracer(Tracer):
    """Leaves: ``torch.nn`` modules and norm-layer subclasses of the host (e.g. mmpretrain's
    channels-first ``LayerNorm2d``, whose input assert cannot be traced)."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)):
            return True
        return super().is_leaf_module(m, qualname)


def plain_backbone(backbone: nn.Module) -> GraphModule:
    """Trace a pruned backbone into a GraphModule whose leaves are ``torch.nn`` modules (and host
    norm layers); no mm_ext class remains.

    Raises:
        RuntimeError: when the backbone cannot be traced (data-dependent control flow), with
            the fx error; the stripe-storage export still works then.
    """
    was = backbone.training
    backbone.eval()
    try:
        graph = _PlainTracer().trace(backbone)
    except Exception as exc:  # noqa: BLE001 - re-raised with the fix
        raise RuntimeError(f'plain export: torch.fx cannot trace {type(backbone).__name__} ({type(exc).__name__}: '
                           f'{exc}); use the stripe-storage checkpoint instead') from exc
    finally:
        backbone.train(was)
    gm = GraphModule(backbone, graph, class_name=f'Pruned{type(backbone).__name__}')
    # the pickle would otherwise name this module's tracer class (re-used when unpickling)
    gm._tracer_cls = None
    gm.graph._tracer_cls = None
    gm.train(was)
    for m in gm.modules():
        mod = type(m).__module__
        if mod.split('.')[0] in ('mm_ext', 'reid_ext'):
            raise RuntimeError(f'plain export: module of type {type(m).__name__} ({mod}) remains; '
                               'the plain model must load without mm_ext')
    return gm


def _atomic_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=path.suffix, dir=path.parent)
    os.close(fd)
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _last_channels(gm: nn.Module, example: torch.Tensor) -> int:
    with torch.no_grad():
        feats = gm.eval()(example)
    feats = feats if isinstance(feats, (tuple, list)) else (feats, )
    return int(feats[-1].shape[1])


def write_plain_export(classifier: nn.Module, cfg, out_stem: Path, example: torch.Tensor,
                       meta: dict) -> Tuple[Path, Path, Path]:
    """Write ``<stem>_plain_backbone.pt`` (pickled GraphModule), ``<stem>_plain.pth`` (mmengine
    checkpoint of the whole classifier) and ``<stem>_plain.py`` (stock mmpretrain config).

    Args:
        classifier (PFFImageClassifier): a classifier pruned with ``form='plain'``.
        cfg (mmengine.Config): the training config (data settings are kept).
        out_stem (Path): path prefix of the three files.
        example (Tensor): (B, C, H, W) preprocessed batch, for the output check.
        meta (dict): stored under ``meta`` of the checkpoint.

    Returns:
        tuple[Path, Path, Path]: backbone file, checkpoint, config.
    """
    from mmengine.config import Config

    gm = plain_backbone(classifier.backbone)
    classifier.backbone.eval()  # (some host backbones' train() returns None: no chaining)
    gm.eval()
    with torch.no_grad():
        ref = classifier.backbone(example)
        got = gm(example)
    ref = ref if isinstance(ref, (tuple, list)) else (ref, )
    got = got if isinstance(got, (tuple, list)) else (got, )
    err = max(float((a - b).abs().max()) for a, b in zip(ref, got))
    if not err <= 1e-4 * max(1.0, max(float(a.abs().max()) for a in ref)):
        raise RuntimeError(f'plain export: traced backbone differs from the pruned backbone by {err:.3g}')
    out_stem = Path(out_stem)
    bb_path = out_stem.with_name(out_stem.name + '_plain_backbone.pt')
    ckpt_path = out_stem.with_name(out_stem.name + '_plain.pth')
    cfg_path = out_stem.with_name(out_stem.name + '_plain.py')
    _atomic_save(gm, bb_path)

    # the classifier's state dict with the traced backbone's names (same qualified names)
    state = {f'backbone.{k}': v for k, v in gm.state_dict().items()}
    for k, v in classifier.state_dict().items():
        if not k.startswith('backbone.') and k != 'pff_arch_record':
            state[k] = v
    _atomic_save({'meta': meta, 'state_dict': state}, ckpt_path)

    model = copy.deepcopy(cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model))
    for key in ('fs_include', 'fs_exclude', 'fs_unregularized', 'pruned_arch', 'init_cfg'):
        model.pop(key, None)
    model['type'] = 'ImageClassifier'
    # mmengine resolves a dotted import path as the type: torch.load(f=..., weights_only=False)
    model['backbone'] = dict(type='torch.load', f='{{ fileDirname }}/' + bb_path.name, weights_only=False)
    head = dict(model.get('head') or {})
    if 'in_channels' in head:
        head['in_channels'] = _last_channels(gm, example[:1])
    head.pop('init_cfg', None)
    model['head'] = head
    if cfg.get('data_preprocessor') is not None and 'data_preprocessor' not in model:
        model['data_preprocessor'] = copy.deepcopy(cfg.data_preprocessor.to_dict()
                                                   if hasattr(cfg.data_preprocessor, 'to_dict')
                                                   else dict(cfg.data_preprocessor))
    text = ['# PFF-pruned model exported by tools/pff_prune.py: stock mmpretrain builds and loads the model without',
            '# mm_ext (data settings are copied from the training config; a GeneratedCIFAR10 data set needs',
            "# custom_imports=dict(imports=['mm_ext.mmpretrain.datasets']) or the stock CIFAR10 with real data).",
            '# The backbone is a plain torch model (ordinary nn.Conv2d, channels removed, kernels cropped),',
            f'# pickled in {bb_path.name}; weights: {ckpt_path.name} (load_from / --checkpoint).',
            f'# Source: {meta.get("config", "")} @ {meta.get("source_checkpoint", "")}',
            "default_scope = 'mmpretrain'",
            f'model = {model!r}',
            f"load_from = '{{{{ fileDirname }}}}/{ckpt_path.name}'"]
    keep = ('test_pipeline', 'test_dataloader', 'test_evaluator', 'val_dataloader', 'val_evaluator',
            'train_dataloader', 'optim_wrapper', 'param_scheduler', 'train_cfg', 'val_cfg', 'test_cfg',
            'default_hooks', 'env_cfg', 'vis_backends', 'visualizer', 'log_level', 'randomness')
    for key in keep:
        if cfg.get(key) is not None:
            v = cfg[key]
            v = v.to_dict() if hasattr(v, 'to_dict') else v
            text.append(f'{key} = {v!r}')
    text.append('resume = False')
    fd, tmp = tempfile.mkstemp(suffix='.py', dir=cfg_path.parent)
    with os.fdopen(fd, 'w') as f:
        f.write('\n'.join(text) + '\n')
    Config.fromfile(tmp)  # must parse
    os.replace(tmp, cfg_path)
    return bb_path, ckpt_path, cfg_path
