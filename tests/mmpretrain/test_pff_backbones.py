"""PFF on stock mmpretrain backbones: one training iteration with the hook, then exports (plain torch
model and stripe storage) equal to the masked dense model; stock mmpretrain loads the plain export;
the pruned model is built from its arch record at construction and fine-tunes."""
import copy
import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn

pytest.importorskip('mmpretrain')

import mm_ext  # noqa: E402,F401
import mm_ext.mmpretrain.pff  # noqa: E402,F401
from mmengine.config import Config  # noqa: E402
from mmengine.optim import OptimWrapper  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmpretrain.registry import HOOKS, MODELS  # noqa: E402
from mmpretrain.structures import DataSample  # noqa: E402

from mm_ext.core.pruning import (FilterSkeletonConv2d, PrunedConv2d, fold_filter_skeleton,  # noqa: E402
                                 pruned_arch)
from mm_ext.mmpretrain.pff.export import write_plain_export  # noqa: E402

DELTA = 0.05
BACKBONES = {
    'resnet50': (dict(type='ResNet', depth=50), 2048, True),
    'resnext50': (dict(type='ResNeXt', depth=50, groups=32, width_per_group=4), 2048, True),
    'mobilenetv2': (dict(type='MobileNetV2', widen_factor=0.5), 1280, True),
    'regnetx400': (dict(type='RegNet', arch='regnetx_400mf'), 384, True),
    'convnext': (dict(type='ConvNeXt', arch=dict(depths=[1, 1, 1, 1], channels=[8, 16, 32, 64])), 64, False),
    'cifar_resnet8': (dict(type='PFFCifarResNet', depth=8, base_channels=4), 16, True),
}


def _classifier(backbone, in_channels, neck=True, **kw):
    init_default_scope('mmpretrain')
    cfg = dict(type='PFFImageClassifier', backbone=backbone,
               neck=dict(type='GlobalAveragePooling') if neck else None,
               head=dict(type='LinearClsHead', num_classes=3, in_channels=in_channels,
                         loss=dict(type='CrossEntropyLoss'), topk=(1, )),
               data_preprocessor=dict(num_classes=3, mean=[128.] * 3, std=[64.] * 3), **kw)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model, cfg


def _batch(n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(inputs=[torch.randint(0, 255, (3, 32, 32), generator=g).float() for _ in range(n)],
                data_samples=[DataSample().set_gt_label(i % 3) for i in range(n)])


def _kill_some_stripes(model):
    """Every third filter of each regularised skeleton dies, and the top and bottom kernel rows of all
    (the hook zeroes them at its first step and masks the BN of removable dead filters)."""
    with torch.no_grad():
        for _, m in model.named_modules():
            if isinstance(m, FilterSkeletonConv2d) and m.regularized:
                fs = m.filter_skeleton
                fs[::3] = 0.01
                if fs.shape[1] >= 3:
                    fs[:, 0, :] = 0.01
                    fs[:, -1, :] = 0.01


class _Log:

    def __init__(self):
        self.lines = []

    def info(self, msg):
        self.lines.append(msg)

    warning = info


def _one_hook_iteration(model, log=None):
    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    runner = SimpleNamespace(model=model, optim_wrapper=optim_wrapper, logger=log or _Log())
    hook = HOOKS.build(dict(type='PFFHook', alpha=1e-3, threshold=DELTA, input_shape=(3, 32, 32)))
    hook.before_train(runner)
    model.train()
    losses = model.train_step(_batch(), optim_wrapper)
    hook.after_train(runner)
    return hook, losses


@pytest.mark.parametrize('name', list(BACKBONES))
def test_backbone_trains_with_hook_and_exports_equal_to_masked_dense(name):
    backbone, ch, neck = BACKBONES[name]
    model, _ = _classifier(backbone, ch, neck)
    n_fs = sum(isinstance(m, FilterSkeletonConv2d) for m in model.modules())
    n_conv = sum(isinstance(m, nn.Conv2d) for m in model.backbone.modules())
    assert n_fs == n_conv  # every conv (grouped, depthwise, even kernels included) carries a skeleton
    _kill_some_stripes(model)
    hook, losses = _one_hook_iteration(model)
    assert 'loss_fs_l1' in losses  # decision 1: the L1 term is a loss entry by default
    assert hook.regularizer.convs
    model.eval()
    x = model.data_preprocessor(_batch(2, seed=1), False)['inputs']
    masked = copy.deepcopy(model)
    fold_filter_skeleton(masked, DELTA)
    with torch.no_grad():
        ref = masked(x, mode='tensor')
    for form in ('plain', 'dense', 'auto'):
        pruned = copy.deepcopy(model)
        report = pruned.prune(x, DELTA, form=form)
        assert not any(isinstance(m, FilterSkeletonConv2d) for m in pruned.modules())
        if form == 'plain':
            assert all(type(m) is nn.Conv2d for m in pruned.modules() if isinstance(m, nn.Conv2d))
            cropped = [n for n, m in pruned.named_modules() if isinstance(m, nn.Conv2d)
                       and m.kernel_size[0] < masked.get_submodule(n).kernel_size[0]]
            assert cropped  # dead border rows cropped the kernel somewhere
        with torch.no_grad():
            torch.testing.assert_close(pruned(x, mode='tensor'), ref, atol=1e-4, rtol=1e-4)
        if BACKBONES[name][2]:
            assert any(r['filters'][0] < r['filters'][1] for r in report.values())  # channels removed somewhere


@pytest.mark.parametrize('name,layer,why', [('convnext', 'pointwise_conv1', 'nn.Linear'),
                                            ('convnext', 'depthwise_conv', 'per-weight'),
                                            ('mobilenetv2', 'layer2.0.conv.1.conv', 'per-weight'),
                                            ('resnext50', 'layer1.0.conv2', 'grouped-stripe')])
def test_hook_logs_the_layers_left_dense(name, layer, why):
    backbone, ch, neck = BACKBONES[name]
    model, _ = _classifier(backbone, ch, neck)
    log = _Log()
    _one_hook_iteration(model, log)
    dense = [line for line in log.lines if 'stays dense' in line]
    assert any(layer in line and why in line for line in dense), dense[:5]


def _pruned_cifar(form='dense', dead_blocks='keep'):
    model, cfg = _classifier(BACKBONES['cifar_resnet8'][0], 16)
    _kill_some_stripes(model)
    _one_hook_iteration(model)
    model.eval()
    x = model.data_preprocessor(_batch(2, seed=1), False)['inputs']
    model.prune(x, DELTA, form=form, dead_blocks=dead_blocks)
    return model, cfg, x


def test_pruned_arch_at_construction_fine_tunes_the_pruned_weights():
    pruned, cfg, x = _pruned_cifar('dense')
    arch = pruned_arch(pruned)
    torch.manual_seed(1)
    fresh = MODELS.build(dict(cfg, pruned_arch=arch))
    fresh.load_state_dict(pruned.state_dict())
    pcs = [m for m in fresh.modules() if isinstance(m, PrunedConv2d) and m.stripe_weight.numel()]
    assert pcs and not any(isinstance(m, FilterSkeletonConv2d) for m in fresh.modules())
    opt = torch.optim.SGD(fresh.parameters(), lr=0.1)
    in_opt = {id(p) for g in opt.param_groups for p in g['params']}
    assert all(id(m.stripe_weight) in in_opt for m in pcs)  # the optimiser holds the pruned parameters
    before = [m.stripe_weight.detach().clone() for m in pcs]
    fresh.train()
    fresh.train_step(_batch(4, seed=2), OptimWrapper(opt))
    changed = [not torch.equal(b, m.stripe_weight.detach()) for b, m in zip(before, pcs)]
    assert all(changed)
    for m in pcs:  # dead stripes stay dead: only live stripes are stored
        assert m.stripe_weight.shape[0] == int(m.stripe_mask.sum())


def test_pruned_checkpoint_restructures_a_fresh_model_on_load():
    pruned, cfg, x = _pruned_cifar('flat', dead_blocks='exact_drop')
    fresh = MODELS.build(cfg)
    from mmengine.runner.checkpoint import load_state_dict
    with pytest.warns(UserWarning, match='pruned_arch'):
        load_state_dict(fresh, pruned.state_dict(), strict=True)
    fresh.eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh(x, mode='tensor'), pruned(x, mode='tensor'))


_STOCK_LOADER = r'''
import json, sys
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
cfg = Config.fromfile(sys.argv[1])
init_default_scope('mmpretrain')
from mmpretrain.registry import MODELS
model = MODELS.build(cfg.model)
load_checkpoint(model, cfg.load_from, map_location='cpu', strict=True, logger='silent')
model.eval()
x = torch.load(sys.argv[2])
with torch.no_grad():
    y = model(x, mode='tensor')
torch.save(y, sys.argv[3])
kinds = sorted({type(m).__name__ for m in model.backbone.modules()})
print(json.dumps(dict(mm_ext=any(k.startswith('mm_ext') for k in sys.modules), kinds=kinds)))
'''


@pytest.mark.slow  # a fresh interpreter importing stock mmpretrain
@pytest.mark.parametrize('name', ['cifar_resnet8', 'mobilenetv2'])
def test_stock_mmpretrain_loads_the_plain_export(name, tmp_path):
    backbone, ch, neck = BACKBONES[name]
    model, cfg = _classifier(backbone, ch, neck)
    _kill_some_stripes(model)
    _one_hook_iteration(model)
    model.eval()
    x = model.data_preprocessor(_batch(2, seed=1), False)['inputs']
    masked = copy.deepcopy(model)
    fold_filter_skeleton(masked, DELTA)
    model.prune(x, DELTA, form='plain')
    train_cfg = Config(dict(model=cfg, default_scope='mmpretrain'))
    files = write_plain_export(model, train_cfg, tmp_path / 'pruned', x, dict(config='test'))
    torch.save(x, tmp_path / 'x.pt')
    script = tmp_path / 'stock.py'
    script.write_text(_STOCK_LOADER)
    res = subprocess.run([sys.executable, str(script), str(files[2]), str(tmp_path / 'x.pt'), str(tmp_path / 'y.pt')],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    info = json.loads(res.stdout.strip().splitlines()[-1])
    assert info['mm_ext'] is False
    assert 'Conv2d' in info['kinds']
    assert not {'FilterSkeletonConv2d', 'PrunedConv2d', 'StripeConv2d', 'DroppedBlock'} & set(info['kinds'])
    with torch.no_grad():
        torch.testing.assert_close(torch.load(tmp_path / 'y.pt'), masked(x, mode='tensor'), atol=1e-4, rtol=1e-4)
