import copy

import pytest
import torch
import torch.nn as nn

from mm_ext.core.pruning import (CifarResNet, CifarVGG, PrunedConv2d, count_params_flops, equip_filter_skeleton,
                                 filter_skeleton_convs, fold_filter_skeleton, mask_bn_by_liveness,
                                 prune_filter_skeleton, reshape_to_state_dict, trace_channel_groups)


class _Classifier(nn.Module):

    def __init__(self, body):
        super().__init__()
        self.body = body
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(body.out_channels, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.body(x)), 1))


def _sparsify(net, x, seed=0, mask_bn=True):
    """Random skeleton with dead stripes and whole dead filters; BN masked like the training hook."""
    g = torch.Generator().manual_seed(seed)
    equip_filter_skeleton(net)
    with torch.no_grad():
        for _, m in filter_skeleton_convs(net):
            fs = m.filter_skeleton
            fs.copy_(torch.rand(fs.shape, generator=g) * 1.1 - 0.05)
            fs.mul_((torch.rand(fs.shape[0], 1, 1, generator=g) > 0.3).float())
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1, generator=g)
                m.running_var.uniform_(0.5, 2, generator=g)
                m.bias.uniform_(-0.5, 0.5, generator=g)
    if mask_bn:
        for name, grp in trace_channel_groups(net, x).items():
            if grp.removable and grp.bn:
                fs = net.get_submodule(name).filter_skeleton
                mask_bn_by_liveness(net.get_submodule(grp.bn), (fs.abs() > 0.01).any((1, 2)))
    return net.eval()


@pytest.mark.parametrize('body', ['vgg', 'resnet'])
def test_pruned_model_equals_masked_dense_and_is_smaller(body):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    net = _sparsify(_Classifier(CifarVGG((16, 'M', 32, 'M', 32)) if body == 'vgg' else CifarResNet(14, 8)), x)
    ref = copy.deepcopy(net)
    fold_filter_skeleton(ref, 0.01)
    report = prune_filter_skeleton(net, x, 0.01)
    assert all(isinstance(net.get_submodule(n), PrunedConv2d) for n in report)
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref(x), atol=1e-5, rtol=1e-5)
    p0, f0 = count_params_flops(ref, x)
    p1, f1 = count_params_flops(net, x)
    assert p1 < p0 and f1 < f0
    if body == 'resnet':
        # residual outputs are never removed; conv1 of a block loses dead filters
        assert not report['body.conv1']['removable'] and 'residual' in report['body.conv1']['reason']
        assert report['body.layer1.0.conv2']['filters'][0] == 8
        assert report['body.layer1.0.conv1']['filters'][0] < 8
        assert not report['body.layer2.0.downsample.0']['removable']
    else:
        assert report['body.features.0']['filters'][0] < 16
        assert net.fc.in_features == report['body.features.8']['filters'][0]


def test_dead_filter_with_nonzero_bn_output_is_kept():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 16)
    net = _sparsify(_Classifier(CifarVGG((8, 8))), x, mask_bn=False)
    with torch.no_grad():
        net.body.features[0].filter_skeleton[3] = 0  # dead filter, BN beta != 0 -> constant channel
        net.body.features[1].bias[3] = 0.7
    ref = copy.deepcopy(net)
    fold_filter_skeleton(ref, 0.01)
    report = prune_filter_skeleton(net, x, 0.01)
    assert net.body.features[0].stripe_mask.shape[0] == report['body.features.0']['filters'][0]
    assert not net.body.features[0].stripe_mask[3].any()  # kept although dead
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref(x), atol=1e-5, rtol=1e-5)


def test_pruned_state_dict_rebuilds_fresh_model():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    net = _sparsify(_Classifier(CifarResNet(8, 8)), x)
    prune_filter_skeleton(net, x, 0.01, form='flat')
    sd = net.state_dict()
    fresh = _Classifier(CifarResNet(8, 8))
    equip_filter_skeleton(fresh)
    assert reshape_to_state_dict(fresh, sd) > 0
    fresh.load_state_dict(sd)
    fresh.eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), net(x))


def test_count_params_flops_hand_computed():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(4 * 25, 2))
    params, flops = count_params_flops(net, torch.randn(1, 3, 5, 5))
    assert params == 4 * 3 * 9 + 100 * 2 + 2
    assert flops == 2 * (4 * 3 * 9 * 25) + 2 * 200
    equip_filter_skeleton(net)
    with torch.no_grad():
        net[0].filter_skeleton.zero_()
        net[0].filter_skeleton[0, 1, 1] = 1
        net[0].filter_skeleton[2, 0, 0] = 1
    prune_filter_skeleton(net, torch.randn(1, 3, 5, 5), 0.01, groups={})
    params, flops = count_params_flops(net, torch.randn(1, 3, 5, 5))
    assert params == 2 * 3 + 202 and flops == 2 * (2 * 3 * 25) + 2 * 200


class _GapNeckNet(nn.Module):
    """mmpretrain-style tail: tuple features, ``gap(x).view(x.size(0), -1)``, linear."""

    def __init__(self):
        super().__init__()
        self.body = CifarVGG((8, 'M', 8))
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        feats = (self.body(x), )
        outs = tuple(self.gap(f).view(f.size(0), -1) for f in feats)
        return self.fc(outs[-1])


def test_trace_ignores_shape_reads_and_finds_linear_consumer():
    groups = trace_channel_groups(_GapNeckNet(), torch.randn(2, 3, 16, 16))
    g = groups['body.features.4']
    assert g.removable and g.consumers == [('fc', 'linear')] and g.bn == 'body.features.5'
    assert groups['body.features.0'].consumers == [('body.features.4', 'conv')]


def test_count_params_flops_keeps_each_module_mode():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    net[1].eval()  # parent in train mode, child in eval mode
    count_params_flops(net, torch.randn(1, 3, 5, 5))
    assert net.training and not net[1].training
