import copy

import pytest
import torch
import torch.nn as nn

from mm_ext.core.pruning import (CifarResNet, CifarVGG, DroppedBlock, FilterSkeletonConv2d, PrunedConv2d,
                                 build_pruned_arch, count_params, count_params_flops, decode_arch, encode_arch, equip_filter_skeleton, fold_batchnorm,
                                 filter_skeleton_convs, fold_filter_skeleton, mask_bn_by_liveness, plain_conv,
                                 prune_filter_skeleton, pruned_arch, trace_channel_groups)


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


@pytest.mark.parametrize('form', ['dense', 'plain', 'auto', 'fused'])
@pytest.mark.parametrize('body', ['vgg', 'resnet'])
def test_pruned_model_equals_masked_dense_and_is_smaller(body, form):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    net = _sparsify(_Classifier(CifarVGG((16, 'M', 32, 'M', 32)) if body == 'vgg' else CifarResNet(14, 8)), x)
    ref = copy.deepcopy(net)
    fold_filter_skeleton(ref, 0.01)
    report = prune_filter_skeleton(net, x, 0.01, form=form)
    kind = nn.Conv2d if form == 'plain' else PrunedConv2d
    assert all(type(net.get_submodule(n)) is kind for n in report)
    if form == 'auto':
        assert all(net.get_submodule(n).form == report[n]['form'] in PrunedConv2d.FORMS for n in report)
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


@pytest.mark.parametrize('form,dead_blocks,fold_bn', [('flat', 'keep', False), ('plain', 'keep', False),
                                                      ('dense', 'exact_drop', False), ('gather', 'exact_drop', True),
                                                      ('fused', 'exact_drop', True)])
def test_pruned_arch_rebuilds_fresh_model_before_loading(form, dead_blocks, fold_bn):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    net = _sparsify(_Classifier(CifarResNet(8, 8)), x)
    with torch.no_grad():
        net.body.layer1[0].conv1.filter_skeleton.zero_()  # a dead block
        net.body.layer1[0].bn1.weight.zero_()
        net.body.layer1[0].bn1.bias.zero_()
        net.body.layer2[0].conv1.filter_skeleton[:, 0, :] = 0  # top rows die: kernel 3x3 -> 1x3 in plain form
        net.body.layer2[0].conv1.filter_skeleton[:, 2, :] = 0
    prune_filter_skeleton(net, x, 0.01, form=form, dead_blocks=dead_blocks)
    if fold_bn:
        assert fold_batchnorm(net)
    if form == 'plain':
        assert net.body.layer2[0].conv1.kernel_size == (1, 3) and net.body.layer2[0].conv1.padding == (0, 1)
    arch = pruned_arch(net)
    record = encode_arch(arch)  # deterministic bytes (a tensor: state dicts broadcast under DDP)
    assert record.dtype == torch.uint8 and torch.equal(encode_arch(decode_arch(record)), record)
    sd = net.state_dict()
    fresh = _Classifier(CifarResNet(8, 8))
    equip_filter_skeleton(fresh)
    assert build_pruned_arch(fresh, decode_arch(record)) > 0
    assert not any(isinstance(m, FilterSkeletonConv2d) for m in fresh.modules())
    assert isinstance(fresh.body.layer1[0], DroppedBlock) == (dead_blocks == 'exact_drop')
    fresh.load_state_dict(sd)  # strict: same keys and shapes
    fresh.eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), net(x))
    with pytest.raises(ValueError, match='pruned-architecture'):
        build_pruned_arch(fresh, {'modules': {}})


def test_count_params_flops_hand_computed():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(4 * 25, 2))
    params, flops = count_params_flops(net, torch.randn(1, 3, 5, 5))
    assert params == 4 * 3 * 9 + 100 * 2 + 2
    assert flops == 2 * (4 * 3 * 9 * 25) + 2 * 200
    equip_filter_skeleton(net)
    assert count_params(net) == dict(official=4 * 3 * 9 + 4 * 9 + 202, deploy=4 * 3 * 9 + 202)
    with torch.no_grad():
        net[0].filter_skeleton.zero_()
        net[0].filter_skeleton[0, 1, 1] = 1
        net[0].filter_skeleton[2, 0, 0] = 1
    prune_filter_skeleton(net, torch.randn(1, 3, 5, 5), 0.01, groups={})
    params, flops = count_params_flops(net, torch.randn(1, 3, 5, 5), params='deploy')
    assert params == 2 * 3 + 202 and flops == 2 * (2 * 3 * 25) + 2 * 200
    # official count: the leftover skeleton (N x K x K per pruned conv) counts too
    assert count_params_flops(net, torch.randn(1, 3, 5, 5))[0] == 2 * 3 + 4 * 9 + 202


class _SigmoidNet(nn.Module):
    """conv -> BN -> functional sigmoid -> conv: a dead (zero) channel becomes 0.5, not 0."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 2, 3, padding=1)

    def forward(self, x):
        return self.conv2(torch.sigmoid(self.bn(self.conv1(x))))


def test_functional_sigmoid_after_dead_channel_keeps_it():
    torch.manual_seed(0)
    net = _SigmoidNet().eval()
    equip_filter_skeleton(net)
    with torch.no_grad():
        net.conv1.filter_skeleton[1] = 0
        net.bn.weight[1] = 0
        net.bn.bias[1] = 0
    x = torch.randn(2, 3, 8, 8)
    ref = copy.deepcopy(net)
    fold_filter_skeleton(ref, 0.01)
    report = prune_filter_skeleton(net, x, 0.01)
    assert report['conv1']['filters'] == (4, 4)  # kept: sigmoid(0) = 0.5 reaches conv2
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref(x))
    assert trace_channel_groups(ref, x)['conv1'].nonzero_ops == ['sigmoid']


@pytest.mark.parametrize('groups', [1, 2, 6])
def test_plain_conv_crops_dead_border_and_equals_nn_conv2d(groups):
    torch.manual_seed(groups)
    conv = nn.Conv2d(6, 6, (5, 3), stride=(2, 1), padding=(2, 1), groups=groups)
    mask = torch.rand(6, 5, 3) > 0.4
    mask[:, 0] = mask[:, 4] = False  # outer rows dead in every filter
    mask[0, 1:4, 0] = True  # the left column lives
    x = torch.randn(2, 6, 9, 8)
    ref = nn.functional.conv2d(x, conv.weight * mask.unsqueeze(1), conv.bias, (2, 1), (2, 1), 1, groups)
    new = plain_conv(conv, mask)
    assert type(new) is nn.Conv2d and new.kernel_size == (3, 3) and new.padding == (1, 1)
    torch.testing.assert_close(new(x), ref)


def _dead_block_net():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 16)
    net = _sparsify(_Classifier(CifarResNet(14, 4)), x)
    with torch.no_grad():
        b = net.body.layer2[0]  # block with a 1x1 projection; conv1 entirely dead, bn1 masked
        b.conv1.filter_skeleton.zero_()
        b.bn1.weight.zero_()
        b.bn1.bias.zero_()
        net.body.layer1[1].conv2.filter_skeleton.zero_()  # identity block; conv2 dead
    return net, x


def test_exact_drop_replaces_dead_blocks_exactly():
    net, x = _dead_block_net()
    ref = copy.deepcopy(net)
    fold_filter_skeleton(ref, 0.01)
    report = prune_filter_skeleton(net, x, 0.01, dead_blocks='exact_drop')
    assert report['__dropped_blocks__']['blocks'] == ['body.layer1.1', 'body.layer2.0']
    blk = net.body.layer2[0]
    assert isinstance(blk, DroppedBlock) and blk.shortcut is not None
    # constant = bn2(0): beta - gamma * mean / sqrt(var + eps), hand-computed from the reference BN
    bn2 = ref.body.layer2[0].bn2
    const = bn2.bias - bn2.weight * bn2.running_mean / torch.sqrt(bn2.running_var + bn2.eps)
    torch.testing.assert_close(blk.const, const.detach())
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref(x))
    p_keep = count_params_flops(ref, x)
    p_drop = count_params_flops(net, x)
    assert p_drop[1] < p_keep[1]


def test_shortcut_mode_is_the_official_inexact_drop():
    net, x = _dead_block_net()
    ref = copy.deepcopy(net)
    fold_filter_skeleton(ref, 0.01)
    prune_filter_skeleton(net, x, 0.01, dead_blocks='shortcut')
    with torch.no_grad():
        h = ref.body.layer1(ref.body.relu(ref.body.bn1(ref.body.conv1(x))))
        torch.testing.assert_close(net.body.layer2[0](h), ref.body.layer2[0].downsample(h))  # shortcut(x) only
        assert not torch.allclose(net(x), ref(x))


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


@pytest.mark.parametrize('form', ['dense', 'flat', 'plain', 'fused'])
def test_fold_batchnorm_keeps_outputs_including_dead_residual_filters(form):
    net, x = _dead_block_net()
    with torch.no_grad():
        net.body.layer3[0].conv2.filter_skeleton[::2] = 0  # residual-coupled conv: dead filters -> BN constants
    ref = copy.deepcopy(net)
    fold_filter_skeleton(ref, 0.01)
    prune_filter_skeleton(net, x, 0.01, form=form, dead_blocks='exact_drop')
    folded = fold_batchnorm(net)
    assert 'body.layer3.0.bn2' in folded and isinstance(net.body.layer3[0].bn2, nn.Identity)
    assert 'body.layer3.0.downsample.1' in folded
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref(x), atol=1e-5, rtol=1e-5)
