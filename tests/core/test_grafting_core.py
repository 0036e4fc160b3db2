import math

import pytest
import torch
import torch.nn as nn

from mm_ext.core.grafting import (conv_bn_pairs, dgd_loss, dgd_teacher_logits, dlr_factors, filter_coefficients,
                                  graft_coefficient, graft_state_dict, invalid_filter_stats, layer_coefficients,
                                  layer_entropy, reference_drivers, ring_graft, structural_drivers)


def test_entropy_hand_computed():
    x = torch.tensor([0., 0., 1., 2., 3., 10.])  # range 10, 10 unit bins; the max sits alone in the last bin
    assert layer_entropy(x) == pytest.approx(math.log(3) / 3 + 2 / 3 * math.log(6), abs=1e-12)
    # official quirk: the maximum falls in no bin but still counts in numel
    assert layer_entropy(x, include_max=False) == pytest.approx(math.log(3) / 3 + 0.5 * math.log(6), abs=1e-12)
    assert layer_entropy(torch.arange(10.)) == pytest.approx(math.log(10), abs=1e-12)
    assert layer_entropy(torch.full((3, 4), 0.7)) == 0.0
    assert layer_entropy(torch.full((3, 4), 0.7), include_max=False) == 0.0
    assert layer_entropy(torch.tensor([1., 2.]), bins=2) == pytest.approx(math.log(2))
    assert layer_entropy(torch.tensor([1., 2.]), bins=2, include_max=False) == pytest.approx(0.5 * math.log(2))


def _official_entropy(x, n=10):
    """The official loop (half-open bins), written out independently in float64."""
    x = [float(v) for v in x.reshape(-1)]
    lo, hi = min(x), max(x)
    scale = (hi - lo) / n
    h = 0.0
    for i in range(n):
        p = sum(1 for v in x if lo + i * scale <= v < lo + (i + 1) * scale) / len(x)
        if p:
            h -= p * math.log(p)
    return h


def test_entropy_matches_official_loop_on_random_weights():
    g = torch.Generator().manual_seed(0)
    for shape in [(8, 3, 3, 3), (50,), (4, 16, 1, 1)]:
        w = torch.randn(shape, generator=g, dtype=torch.float64)
        assert layer_entropy(w, include_max=False) == pytest.approx(_official_entropy(w), abs=1e-12)


def test_coefficient_hand_computed():
    # A/pi * atan(c * dH) + 0.5, rounded to 2 decimals
    assert graft_coefficient(1.001, 1.0) == 0.56  # atan(0.5) = 0.4636 -> 0.5590
    assert graft_coefficient(1.1, 1.0) == 0.7  # atan(50) = 1.5508 -> 0.6975
    assert graft_coefficient(1.0, 1.1) == 0.3
    assert graft_coefficient(1.0, 1.0) == 0.5
    assert graft_coefficient(1.001, 1.0, c=5) == 0.5  # 0.50064
    assert graft_coefficient(1.1, 1.0, c=5) == 0.56
    assert graft_coefficient(1.1, 1.0, c=5, decimals=None) == pytest.approx(0.4 / math.pi * math.atan(0.5) + 0.5)
    assert graft_coefficient(2.0, 0.0, a=0.0) == 0.5


class _Named(nn.Module):
    """A conv net whose keys follow the official naming (first key contains 'conv')."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(6)
        self.shortcut = nn.Conv2d(4, 6, 1)
        self.fc = nn.Linear(6, 5)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(x)) + self.shortcut(x)
        return self.fc(y.mean((2, 3)))


def _randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    sd = model.state_dict()
    for k, v in sd.items():
        if v.is_floating_point():
            v.copy_(torch.rand(v.shape, generator=g) + 0.1 if 'running_var' in k else
                    torch.randn(v.shape, generator=g))
        else:
            v.fill_(int(torch.randint(0, 100, (1, ), generator=g)))
    return model


def test_graft_equals_plain_loop_in_reference_mode():
    own, other = _randomise(_Named(), 1).state_dict(), _randomise(_Named(), 2).state_dict()
    coefs, layers = layer_coefficients(own, other, reference_drivers(list(own)), include_max=False)
    got = graft_state_dict(own, other, coefs)
    # the official loop: a new w at every key containing 'conv', every entry blended with the latest w
    w = None
    for k in own:
        if 'conv' in k:
            d = _official_entropy(own[k]) - _official_entropy(other[k])
            w = round(0.4 / math.pi * math.atan(500 * d) + 0.5, 2)
        ref = w * own[k].double() + (1 - w) * other[k].double()
        if own[k].is_floating_point():
            torch.testing.assert_close(got[k], ref.float(), rtol=0, atol=1e-6)
        else:
            assert got[k].dtype == own[k].dtype and int(got[k]) == round(float(ref))
    assert set(layers) == {'conv1.weight', 'conv2.weight', 'conv2.bias'}
    assert coefs['shortcut.weight'] == coefs['bn2.num_batches_tracked'] == layers['conv2.bias'][2]


def test_integer_buffer_cast_back():
    out = graft_state_dict({'n': torch.tensor(10)}, {'n': torch.tensor(20)}, {'n': 0.7})
    assert out['n'].dtype == torch.int64 and int(out['n']) == 13


def test_structural_drivers_shortcut_bn_and_head_inherit():
    m = _Named()
    d = structural_drivers(m, lambda: m(torch.randn(1, 3, 8, 8)))
    assert d['conv1.weight'] == d['bn1.running_var'] == d['bn1.num_batches_tracked'] == 'conv1.weight'
    assert d['conv2.bias'] == d['bn2.weight'] == 'conv2.weight'
    # the 1x1 shortcut reads the same tensor as conv2: it inherits conv2's coefficient, as does the head
    assert d['shortcut.weight'] == d['shortcut.bias'] == d['fc.weight'] == 'conv2.weight'


def test_structural_equals_reference_on_torchvision_resnet():
    torchvision = pytest.importorskip('torchvision')
    m = torchvision.models.resnet18(num_classes=10)
    ref = reference_drivers(list(m.state_dict()))
    got = structural_drivers(m, lambda: m(torch.randn(1, 3, 32, 32)))
    # torchvision names contain 'conv' where the structure has a driver: the two rules agree
    # (downsample.0 / downsample.1 / fc inherit the block's last conv in both)
    assert got == ref
    assert got['layer2.0.downsample.0.weight'] == 'layer2.0.conv2.weight'
    assert got['fc.bias'] == 'layer4.1.conv2.weight'


def test_structural_drivers_follow_pooling_to_an_avg_down_shortcut():

    class AvgDown(nn.Module):

        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4))
            self.main = nn.Sequential(nn.Conv2d(4, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4))
            self.down = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))

        def forward(self, x):
            x = self.stem(x)
            return self.main(x) + self.down(x)

    m = AvgDown()
    d = structural_drivers(m, lambda: m(torch.randn(1, 3, 8, 8)))
    assert d['stem.0.weight'] == d['stem.1.bias'] == 'stem.0.weight'
    assert d['down.1.weight'] == d['down.2.running_mean'] == 'main.0.weight'
    with pytest.raises(ValueError, match="does not contain 'conv'"):
        reference_drivers(list(m.state_dict()))


def test_filter_level_coefficients_hand_computed():
    m = _Named()
    pairs = conv_bn_pairs(m, lambda: m(torch.randn(1, 3, 8, 8)))
    assert pairs['conv1'] == ('bn1', None) and pairs['conv2'] == ('bn2', 'bn1') and pairs['shortcut'] == (None,
                                                                                                        'bn1')
    own, other = _randomise(_Named(), 1).state_dict(), _randomise(_Named(), 2).state_dict()
    own['bn1.weight'].copy_(torch.tensor([1., 0., 3., -2.]))
    other['bn1.weight'].copy_(torch.tensor([1., 0., -1., 2.]))
    base = {k: 0.3 for k in own}
    co = filter_coefficients(own, other, pairs, base)
    w1 = torch.tensor([0.5, 0.5, 0.75, 0.5], dtype=torch.float64)
    torch.testing.assert_close(co['bn1.running_mean'], w1)
    torch.testing.assert_close(co['conv1.weight'].reshape(-1), w1)
    assert co['bn1.num_batches_tracked'] == co['fc.weight'] == co['shortcut.weight'] == 0.3
    out = graft_state_dict(own, other, co)
    torch.testing.assert_close(out['conv1.weight'][2], 0.75 * own['conv1.weight'][2] + 0.25 * other['conv1.weight'][2])
    # input side: conv2's input slice i also uses bn1's w_i (product of the two blends)
    co2 = filter_coefficients(own, other, pairs, base, input_side=True)
    w2 = (own['bn2.weight'].abs() / (own['bn2.weight'].abs() + other['bn2.weight'].abs())).double()
    torch.testing.assert_close(co2['conv2.weight'][:, :, 0, 0], w2[:, None] * w1[None, :])


def test_ring_graft_pulls_from_predecessor():
    states = [{'conv.weight': torch.full((2, 2), float(k))} for k in range(3)]
    out = ring_graft(states, lambda a, b: {'conv.weight': 0.25})
    assert [float(s['conv.weight'][0, 0]) for s in out] == [0.25 * 0 + 0.75 * 2, 0.25 * 1 + 0.75 * 0,
                                                            0.25 * 2 + 0.75 * 1]


def test_invalid_filter_stats_hand_computed():
    w = torch.zeros(4, 2, 1, 1)
    w[0] = 1.0
    w[1, 0] = 0.004
    w[1, 1] = -0.004  # L1 0.008 < 0.01
    w[2] = 0.006  # L1 0.012
    st = invalid_filter_stats({'a.weight': w, 'bn.weight': torch.zeros(4)}, threshold=0.01)
    assert st['layers'] == {'a.weight': (2, 4)} and st['ratio'] == 0.5


def test_dgd_loss_hand_computed():
    s = torch.tensor([[0.0, math.log(3)]], requires_grad=True)
    t = torch.tensor([[0.0, 0.0]])
    r3 = math.sqrt(3)
    # student at T=2: softmax = (1, sqrt 3) / (1 + sqrt 3); teacher at T=1: (0.5, 0.5)
    ce = 4 * (math.log(1 + r3) - 0.25 * math.log(3))
    assert float(dgd_loss(s, t)) == pytest.approx(ce, rel=1e-6)
    assert float(dgd_loss(s, t, mode='kl')) == pytest.approx(4 * (math.log(0.5) + ce / 4), rel=1e-6)
    # teacher softmax at T=1 for soft_ce, at T for kl: a non-uniform teacher tells them apart
    t2 = torch.tensor([[0.0, 2.0]])
    p = torch.softmax(t2, 1)[0]
    ls = torch.log_softmax(s.detach() / 2, 1)[0]
    assert float(dgd_loss(s, t2)) == pytest.approx(float(-4 * (p * ls).sum()), rel=1e-6)
    dgd_loss(s, t2).backward()
    assert s.grad is not None and t2.grad is None


def test_dgd_teacher_is_mean_of_others_and_detached():
    z = [torch.tensor([[1., 2.]], requires_grad=True), torch.tensor([[3., 4.]]), torch.tensor([[5., 9.]])]
    t = dgd_teacher_logits(z)
    torch.testing.assert_close(t[0], torch.tensor([[4., 6.5]]))
    torch.testing.assert_close(t[2], torch.tensor([[2., 3.]]))
    assert not t[1].requires_grad


def test_dlr_factors():
    assert dlr_factors(2) == pytest.approx([0.5, 1.0])
    assert dlr_factors(3) == pytest.approx([0.25, 0.75, 1.0])
    assert dlr_factors(1) == pytest.approx([1.0])
