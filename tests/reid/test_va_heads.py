"""VA-reID model heads (spec decision 11) and the observed-pairs classifier, against plain layers."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from reid_ext.core.norm_linear import NormLinear
from reid_ext.core.va_losses import observed_pairs, valsr_loss
from reid_ext.models.va_reid_net import VAReIDNet


def _net(**kw):
    torch.manual_seed(0)
    return VAReIDNet(num_classes=3, backbone='tiny', **kw)


def test_default_heads_are_plain_linear_on_the_bnneck_feature():
    net = _net().train()
    assert net.head == 'linear'
    assert type(net.id_head) is nn.Linear and net.id_head.bias is None
    assert type(net.view_head) is nn.Linear and net.view_head.bias is None
    assert (net.id_head.out_features, net.view_head.out_features) == (3, 9)
    assert net.viewpoint_classifier is None  # fallback classifier only when asked for
    x = torch.randn(4, 3, 32, 16)
    out = net(x)
    f = net.pool(net.backbone(x)).flatten(1)
    fb = net.bnneck(f)
    torch.testing.assert_close(out['feat'], f)
    torch.testing.assert_close(out['id_scores'], fb @ net.id_head.weight.t())
    torch.testing.assert_close(out['view_scores'], fb @ net.view_head.weight.t())
    assert set(out) == {'feat', 'id_scores', 'view_scores'}
    net.eval()
    torch.testing.assert_close(net(x), net.bnneck(net.pool(net.backbone(x)).flatten(1)))


def test_cosine_heads_and_fallback_classifier_on_request():
    net = _net(head='cosine', fallback_classifier=True).train()
    assert type(net.id_head) is NormLinear and type(net.view_head) is NormLinear
    out = net(torch.randn(2, 3, 32, 16))
    assert out['vp_logits'].shape == (2, 3)
    assert float(out['id_scores'].detach().abs().max()) <= 1 + 1e-5  # raw cosines; the engine scales
    with pytest.raises(ValueError, match='head'):
        _net(head='arcface')


def test_observed_pairs_classifier_equals_a_k_class_linear_layer():
    """The masked dense classifier is exactly a bias-free Linear over the observed pairs."""
    net = _net().train()
    pids, views = torch.tensor([0, 0, 1, 2, 2, 2]), torch.tensor([0, 2, 1, 0, 1, 2])
    net.set_observed_pairs(observed_pairs(pids, views, 3, 3))
    rows = [0 * 3 + 0, 0 * 3 + 2, 1 * 3 + 1, 2 * 3 + 0, 2 * 3 + 1, 2 * 3 + 2]
    ref = nn.Linear(net.feature_dim, 6, bias=False)
    ref.weight.data.copy_(net.view_head.weight.data[rows])
    x = torch.randn(6, 3, 32, 16)
    out = net(x)
    fb = net.bnneck(net.pool(net.backbone(x)).flatten(1)).detach()
    torch.testing.assert_close(out['view_scores'], ref(fb))
    torch.testing.assert_close(net.view_weight, ref.weight)
    # the same loss, and the same gradient on the observed rows; none on the others
    loss = valsr_loss(out['view_scores'], pids, views, classes=net.pair_classes)
    loss.backward()
    valsr_loss(ref(fb), pids, views, classes=net.pair_classes).backward()
    torch.testing.assert_close(net.view_head.weight.grad[rows], ref.weight.grad)
    others = [r for r in range(9) if r not in rows]
    assert float(net.view_head.weight.grad[others].abs().max()) == 0.0
    # the class set travels with the weights
    state = net.state_dict()
    fresh = _net()
    fresh.load_state_dict(state)
    assert fresh.pair_classes.index.tolist() == [[0, -1, 1], [-1, 2, -1], [3, 4, 5]]


def test_bnneck_se_resnext101_factory_exists():
    from reid_ext.models import bnneck_se_resnext101
    assert callable(bnneck_se_resnext101)
