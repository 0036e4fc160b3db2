"""PFF adapters: backbones, classifier surgery, the hook's per-step semantics, pruned reload."""
import copy
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip('mmpretrain')

import mm_ext  # noqa: E402,F401
import mm_ext.mmpretrain.pff  # noqa: E402,F401
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.optim import OptimWrapper  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmpretrain.registry import HOOKS, MODELS  # noqa: E402
from mmpretrain.structures import DataSample  # noqa: E402

from mm_ext.core.pruning import FilterSkeletonConv2d, PrunedConv2d  # noqa: E402


def _model(backbone):
    init_default_scope('mmpretrain')
    cfg = dict(type='PFFImageClassifier', backbone=backbone, neck=dict(type='GlobalAveragePooling'),
               head=dict(type='LinearClsHead', num_classes=3, in_channels=8,
                         loss=dict(type='CrossEntropyLoss'), topk=(1, )))
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def _batch(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    imgs = [torch.randint(0, 255, (3, 16, 16), generator=g).float() for _ in range(n)]
    samples = [DataSample().set_gt_label(i % 3) for i in range(n)]
    return dict(inputs=imgs, data_samples=samples)


def test_backbones_and_classifier_surgery():
    vgg = _model(dict(type='PFFCifarVGG', cfg=(4, 'M', 8), bn_weight_init=0.5))
    assert vgg.fs_names == ['backbone.features.0', 'backbone.features.4']
    bn = vgg.backbone.features[1]
    assert torch.all(bn.weight == 0.5) and torch.all(vgg.backbone.features[0].filter_skeleton == 1)
    res = _model(dict(type='PFFCifarResNet', depth=8, base_channels=2))
    fs = {n: m for n, m in res.named_modules() if isinstance(m, FilterSkeletonConv2d)}
    assert not fs['backbone.layer2.0.downsample.0'].regularized and fs['backbone.layer2.0.conv1'].regularized
    out = res(torch.randn(2, 3, 16, 16), mode='tensor')
    assert out.shape == (2, 3)
    with pytest.raises(ValueError, match='fs_include'):
        MODELS.build(dict(type='PFFImageClassifier', backbone=dict(type='PFFCifarVGG', cfg=(4, )),
                          neck=dict(type='GlobalAveragePooling'),
                          head=dict(type='LinearClsHead', num_classes=3, in_channels=4), fs_include='^nothing'))


@pytest.mark.parametrize('l1_mode', ['grad', 'loss'])
def test_hook_one_train_step_hand_computed(l1_mode):
    """One runner iteration: α·sign(I) on the FS gradient, |I| ≤ δ zeroed, BN of dead filters masked."""
    alpha, delta, lr = 0.05, 0.2, 0.1
    model = _model(dict(type='PFFCifarResNet', depth=8, base_channels=2))
    with torch.no_grad():
        fs1 = model.backbone.layer1[0].conv1.filter_skeleton
        fs1[0] = 0.1  # filter 0 of block conv1: every stripe <= delta -> dead, bn1 channel masked
        fs1[1, 0, 0] = -0.15  # one dead stripe in a live filter
        fs2 = model.backbone.layer1[0].conv2.filter_skeleton
        fs2[0] = 0.1  # dead filter feeding the residual add: bn2 must NOT be masked
    ref = copy.deepcopy(model)
    data = _batch()
    # reference: plain SGD step on the task loss, then the hand-written PFF rules
    ref_opt = torch.optim.SGD(ref.parameters(), lr=lr)
    ref_data = ref.data_preprocessor(data, True)
    ref_loss = ref(**ref_data, mode='loss')['loss']
    ref_loss.backward()
    g1 = ref.backbone.layer1[0].conv1.filter_skeleton.grad.clone()
    i1 = ref.backbone.layer1[0].conv1.filter_skeleton.detach().clone()
    gb = ref.backbone.layer1[0].bn1.weight.grad.clone()
    b2 = ref.backbone.layer1[0].bn2.weight.detach() - lr * ref.backbone.layer1[0].bn2.weight.grad

    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=lr))
    runner = SimpleNamespace(model=model, optim_wrapper=optim_wrapper,
                             logger=MMLogger.get_instance('test_pff_hook'))
    hook = HOOKS.build(dict(type='PFFHook', alpha=alpha, threshold=delta, l1_mode=l1_mode, input_shape=(3, 16, 16)))
    hook.before_train(runner)
    assert set(hook.regularizer.bns) == {f'backbone.layer{s}.{b}.conv1' for s in (1, 2, 3) for b in (0, )}
    log = model.train_step(data, optim_wrapper)
    assert ('loss_fs_l1' in log) == (l1_mode == 'loss')

    mask = i1.abs() > delta
    expected = (i1 - lr * (g1 + alpha * torch.sign(i1))) * mask
    torch.testing.assert_close(model.backbone.layer1[0].conv1.filter_skeleton.detach(), expected)
    bn1 = model.backbone.layer1[0].bn1
    assert bn1.weight[0] == 0 and bn1.bias[0] == 0
    torch.testing.assert_close(bn1.weight[1:].detach(), (i1.new_tensor(0.5) - lr * gb)[1:])
    # bn2 feeds the residual add: untouched by the liveness mask, dead conv2 filter still thresholded
    torch.testing.assert_close(model.backbone.layer1[0].bn2.weight.detach(), b2)
    assert torch.all(model.backbone.layer1[0].conv2.filter_skeleton[0] == 0)
    hook.after_train(runner)
    assert not optim_wrapper.optimizer._optimizer_step_pre_hooks


def test_hook_rejects_bad_config():
    with pytest.raises(ValueError, match='l1_mode'):
        HOOKS.build(dict(type='PFFHook', l1_mode='l2'))


def test_hook_default_is_the_loss_term():
    """Spec decision 1: the L1 term is a loss entry unless l1_mode='grad' is asked for."""
    assert HOOKS.build(dict(type='PFFHook')).l1_mode == 'loss'


def test_pruned_state_dict_loads_into_fresh_classifier():
    model = _model(dict(type='PFFCifarVGG', cfg=(4, 'M', 8)))
    with torch.no_grad():
        model.backbone.features[0].filter_skeleton[1] = 0
        model.backbone.features[1].weight[1] = 0
        model.backbone.features[1].bias[1] = 0
        model.backbone.features[4].filter_skeleton[:, 0] = 0
    model.eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        before = model(x, mode='tensor')
    model.prune(x, 0.01)
    assert model.backbone.features[0].out_channels == 3
    fresh = _model(dict(type='PFFCifarVGG', cfg=(4, 'M', 8)))
    from mmengine.runner.checkpoint import load_state_dict
    with pytest.warns(UserWarning, match='pruned_arch'):
        load_state_dict(fresh, model.state_dict(), strict=True)
    fresh.eval()
    assert isinstance(fresh.backbone.features[4], PrunedConv2d)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x, mode='tensor'), before, atol=1e-5, rtol=1e-5)
