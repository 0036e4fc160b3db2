import torch
import torch.nn as nn

from mm_ext.core.pruning import (CifarResNet, FilterSkeletonConv2d, dense_layers, equip_filter_skeleton,
                                 filter_skeleton_convs, stripe_ineligibility, unequip_filter_skeleton)


def _toy():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=2),  # grouped: skeleton per stripe of C/groups weights
        nn.Conv2d(8, 6, 2),  # even kernel: skeleton too (no stripe form)
        nn.Conv2d(6, 4, 5, stride=2, padding=2, bias=False),
        nn.Conv2d(4, 4, 3, padding=1, groups=4),  # depthwise: per-weight skeleton
        nn.Flatten(), nn.Linear(64, 2))


def test_equip_forward_unchanged_and_roundtrip():
    model = _toy()
    x = torch.randn(2, 3, 9, 9)
    y0 = model(x)
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)]
    names = equip_filter_skeleton(model)
    assert names == ['0', '2', '3', '4', '5']
    fs = dict(filter_skeleton_convs(model))
    assert fs['0'].filter_skeleton.shape == (8, 3, 3) and fs['4'].filter_skeleton.shape == (4, 5, 5)
    assert fs['3'].filter_skeleton.shape == (6, 2, 2) and fs['5'].filter_skeleton.shape == (4, 3, 3)
    dense = dict(dense_layers(model))
    assert set(dense) == {'2', '5', '7'}
    assert 'grouped-stripe' in dense['2'] and 'per-weight' in dense['5'] and 'nn.Linear' in dense['7']
    assert torch.equal(fs['0'].filter_skeleton, torch.ones(8, 3, 3))
    assert model[0].weight is weights[0]  # same Parameter (optimisers keep working)
    torch.testing.assert_close(model(x), y0)
    assert unequip_filter_skeleton(model, fold=False) == ['0', '2', '3', '4', '5']
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


def test_grouped_skeleton_scales_each_groups_stripe():
    """Grouped / depthwise skeleton == nn.Conv2d with weight[n, :, i, j] scaled by I[n, i, j]."""
    torch.manual_seed(0)
    for groups, cin in ((2, 8), (8, 8)):
        conv = nn.Conv2d(cin, 8, 3, padding=1, groups=groups)
        fs = FilterSkeletonConv2d.from_conv(conv)
        with torch.no_grad():
            fs.filter_skeleton.uniform_(-1, 1)
        x = torch.randn(2, cin, 6, 6)
        w = conv.weight.detach().clone()
        for n in range(8):
            for i in range(3):
                for j in range(3):
                    w[n, :, i, j] *= fs.filter_skeleton[n, i, j]
        torch.testing.assert_close(fs(x), nn.functional.conv2d(x, w, conv.bias, 1, 1, 1, groups))


def test_stripe_form_needs_square_stride():
    assert 'square stride' in stripe_ineligibility(nn.Conv2d(3, 4, 3, stride=(1, 2), padding=1))
    assert stripe_ineligibility(nn.Conv2d(3, 4, 3, stride=2, padding=1)) is None
    assert 'groups' in stripe_ineligibility(nn.Conv2d(4, 4, 3, groups=2))


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
