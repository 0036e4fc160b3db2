import pytest
import torch
import torch.nn as nn

from mm_ext.core.pruning import (CifarResNet, FilterSkeletonConv2d, equip_filter_skeleton, filter_skeleton_convs,
                                 unequip_filter_skeleton)


def _toy():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=2),  # ineligible: groups
        nn.Conv2d(8, 6, 2),  # ineligible: even kernel
        nn.Conv2d(6, 4, 5, stride=2, padding=2, bias=False))


def test_equip_forward_unchanged_and_roundtrip():
    model = _toy()
    x = torch.randn(2, 3, 9, 9)
    y0 = model(x)
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)]
    names = equip_filter_skeleton(model)
    assert names == ['0', '4']
    fs = dict(filter_skeleton_convs(model))
    assert fs['0'].filter_skeleton.shape == (8, 3, 3) and fs['4'].filter_skeleton.shape == (4, 5, 5)
    assert torch.equal(fs['0'].filter_skeleton, torch.ones(8, 3, 3))
    assert model[0].weight is weights[0]  # same Parameter (optimisers keep working)
    torch.testing.assert_close(model(x), y0)
    assert unequip_filter_skeleton(model, fold=False) == ['0', '4']
    assert type(model[0]) is nn.Conv2d and model[0].weight is weights[0]
    assert not any(isinstance(m, FilterSkeletonConv2d) for m in model.modules())
    assert set(model.state_dict()) == set(_toy().state_dict())
    torch.testing.assert_close(model(x), y0)


def test_unequip_fold_bakes_skeleton_into_weight():
    model = _toy()
    equip_filter_skeleton(model)
    with torch.no_grad():
        model[4].filter_skeleton.uniform_(-1, 1)
    x = torch.randn(1, 3, 9, 9)
    y = model(x)
    unequip_filter_skeleton(model, fold=True)
    torch.testing.assert_close(model(x), y)


def test_equip_include_exclude_and_regularized_flags():
    net = CifarResNet(20)
    names = equip_filter_skeleton(net, include=r'^layer2', exclude=r'layer2\.2')
    assert names and all(n.startswith('layer2') and not n.startswith('layer2.2') for n in names)
    fs = dict(filter_skeleton_convs(net))
    assert 'layer2.0.downsample.0' in fs and not fs['layer2.0.downsample.0'].regularized
    assert fs['layer2.0.conv1'].regularized


def test_equip_strict_names_the_bad_conv():
    with pytest.raises(ValueError, match="'2'.*groups=2"):
        equip_filter_skeleton(_toy(), include=r'^2$', strict=True)


def test_filter_skeleton_is_a_parameter_and_gets_gradient():
    conv = FilterSkeletonConv2d(3, 4, 3, padding=1)
    assert any(n == 'filter_skeleton' for n, _ in conv.named_parameters())
    conv(torch.randn(1, 3, 5, 5)).sum().backward()
    w = conv.weight.detach()
    # d/dI[n,i,j] of sum(conv) = sum_c W[n,c,i,j] * (sum of input over the positions tap (i,j) sees)
    assert conv.filter_skeleton.grad.shape == (4, 3, 3)
    x = torch.randn(1, 3, 5, 5)
    conv.zero_grad()
    conv(x).sum().backward()
    xp = nn.functional.pad(x, (1, 1, 1, 1))
    tap = torch.stack([torch.stack([xp[0, :, i:i + 5, j:j + 5].sum((1, 2)) for j in range(3)], -1)
                       for i in range(3)], -2)  # (C, K, K)
    expected = (w * tap.unsqueeze(0)).sum(1)
    torch.testing.assert_close(conv.filter_skeleton.grad, expected)
