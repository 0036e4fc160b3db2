"""VA-reID losses on hand-computed cases and against the spec's VALSR formula."""
import math

import pytest
import torch
import torch.nn.functional as F

from reid_ext.core import (NormLinear, WarmupMultiStepLR, adaptive_lsr_targets,
                           static_direction_lsr_targets, valsr_loss, valsr_targets, vaal_loss)
from reid_ext.core.va_losses import angular_prototype_regularizer, margin_logits


def test_valsr_hand_computed_uniform_logits():
    # N = 2 identities x V = 3 views, uniform p = 1/6: p_id = 1/2, p_yv = 1/6
    q = valsr_targets(torch.zeros(1, 6), torch.tensor([1]), torch.tensor([2]), epsilon=0.2)
    eps1, eps2 = 0.2 * (1 - 1 / 2), 0.2 * (1 - 1 / 6)
    expected = torch.tensor([[eps2 / 3] * 3 + [eps1 / 2, eps1 / 2, 1 - eps1 - eps2]])
    torch.testing.assert_close(q, expected)
    # -sum q log(1/6) = log 6 for any target summing to 1
    assert valsr_loss(torch.zeros(1, 6), torch.tensor([1]), torch.tensor([2])).item() == \
        pytest.approx(math.log(6), rel=1e-6)


def test_valsr_targets_follow_formula_and_sum_to_one():
    g = torch.Generator().manual_seed(0)
    n, v, b, eps = 5, 3, 7, 0.2
    logits = torch.randn(b, n * v, generator=g) * 3
    pids, views = torch.randint(0, n, (b,), generator=g), torch.randint(0, v, (b,), generator=g)
    q = valsr_targets(logits, pids, views, v, eps)
    torch.testing.assert_close(q.sum(1), torch.ones(b))
    p = logits.softmax(1)
    for i in range(b):  # element by element, straight from the spec's table
        y, w = int(pids[i]), int(views[i])
        p_id = sum(p[i, y * v + u] for u in range(v))
        e1, e2 = eps * (1 - p_id), eps * (1 - p[i, y * v + w])
        for c in range(n * v):
            if c == y * v + w:
                t = 1 - e1 - e2
            elif c // v == y:
                t = e1 / (v - 1)
            else:
                t = e2 / (n * v - v)
            assert q[i, c].item() == pytest.approx(float(t), abs=1e-6)


def test_valsr_loss_gradient_treats_targets_as_constants():
    logits = torch.randn(4, 9, requires_grad=True)
    pids, views = torch.tensor([0, 1, 2, 0]), torch.tensor([0, 2, 1, 1])
    valsr_loss(logits, pids, views).backward()
    q = valsr_targets(logits, pids, views)
    # d/dlogits of mean_b(-sum q log softmax) with q constant = (softmax - q) / B
    torch.testing.assert_close(logits.grad, (logits.detach().softmax(1) - q) / 4)


def test_static_and_adaptive_lsr_targets():
    q = static_direction_lsr_targets(9, torch.tensor([2]), torch.tensor([0]), alpha=0.6, beta=0.15)
    torch.testing.assert_close(q, torch.tensor([[0.1 / 6] * 6 + [0.6, 0.15, 0.15]]))
    # adaptive: uniform logits over 4 classes -> p_t = 1/4, eps_t = 0.25 * 3/4
    q = adaptive_lsr_targets(torch.zeros(1, 4), torch.tensor([3]), epsilon=0.25)
    e = 0.25 * 0.75
    torch.testing.assert_close(q, torch.tensor([[e / 3, e / 3, e / 3, 1 - e]]))


def test_margin_logits_and_regularizer_hand_computed():
    cos = torch.tensor([[0.5, 0.2]])
    torch.testing.assert_close(margin_logits(cos, torch.tensor([0]), 10.0, 0.3),
                               torch.tensor([[2.0, 2.0]]))
    w = torch.tensor([[1.0, 0.0]])  # one identity
    u = torch.tensor([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]])  # cos = 1, 0, -1 -> 1 - cos = 0, 1, 2
    assert angular_prototype_regularizer(w, u, 3).item() == pytest.approx(1.0)


def test_vaal_loss_hand_computed():
    # 2 identities x 3 views; a feature exactly on W_0 and U_(0, 1)
    id_cos = torch.tensor([[1.0, 0.0]])
    view_cos = torch.tensor([[0.0, 1.0, 0.0, 0.0, 0.0, 0.0]])
    w = torch.eye(2)
    u = torch.tensor([[1.0, 0.0]] * 3 + [[0.0, 1.0]] * 3)
    out = vaal_loss(id_cos, view_cos, torch.tensor([0]), torch.tensor([1]), w, u, scale=4.0,
                    margin_id=0.5, margin_view=0.25, reg_weight=2.0)
    # identity level: logits (4 * 0.5, 0) ; view level: logits (0, 4 * 0.75, 0, 0, 0, 0)
    assert out['loss_vaal_id'].item() == pytest.approx(-math.log(math.exp(2) / (math.exp(2) + 1)))
    assert out['loss_vaal_view'].item() == pytest.approx(
        -math.log(math.exp(3) / (math.exp(3) + 5)), rel=1e-6)
    assert out['loss_vaal_reg'].item() == pytest.approx(0.0, abs=1e-7)


def test_losses_reject_bad_labels():
    with pytest.raises(ValueError, match='views must lie'):
        valsr_targets(torch.zeros(1, 6), torch.tensor([0]), torch.tensor([-1]))
    with pytest.raises(ValueError, match='num_ids \\* num_views'):
        valsr_targets(torch.zeros(1, 7), torch.tensor([0]), torch.tensor([0]))


def test_norm_linear_is_scaled_cosine():
    layer = NormLinear(4, 3, scale=8.0)
    x = torch.randn(5, 4)
    expected = 8.0 * F.normalize(x, dim=1) @ F.normalize(layer.weight, dim=1).t()
    torch.testing.assert_close(layer(x), expected)


def test_warmup_multistep_lr():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = WarmupMultiStepLR(opt, milestones=[4, 6], gamma=0.1, warmup_factor=0.2, warmup_epochs=2)
    lrs = []
    for _ in range(7):
        lrs.append(opt.param_groups[0]['lr'])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.2, 0.6, 1.0, 1.0, 0.1, 0.1, 0.01])


# ---------------------------------------------------------------- observed (pid, view) pairs
# hand-built training set: identity 0 seen from the front and the back, identity 1 only from the
# side, identity 2 from all three viewpoints -> K = 6 classes
# (0,f) (0,b) (1,s) (2,f) (2,s) (2,b)
_OBS_PIDS = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
_OBS_VIEWS = torch.tensor([0, 2, 2, 1, 1, 0, 1, 2, -1])  # -1: unknown, ignored


def test_observed_pairs_classes_hand_built():
    from reid_ext.core.va_losses import observed_pairs, pair_classes
    obs = observed_pairs(_OBS_PIDS, _OBS_VIEWS, num_ids=3, num_views=3)
    assert obs.tolist() == [[True, False, True], [False, True, False], [True, True, True]]
    c = pair_classes(3, 3, obs)
    assert c.pid.tolist() == [0, 0, 1, 2, 2, 2]
    assert c.view.tolist() == [0, 2, 1, 0, 1, 2]
    assert c.index.tolist() == [[0, -1, 1], [-1, 2, -1], [3, 4, 5]]
    dense = pair_classes(3, 3)
    assert dense.index.flatten().tolist() == list(range(9))


def test_valsr_over_observed_pairs_hand_computed():
    from reid_ext.core.va_losses import observed_pairs, pair_classes
    c = pair_classes(3, 3, observed_pairs(_OBS_PIDS, _OBS_VIEWS, 3, 3))
    # uniform p = 1/6 over K = 6 classes
    q = valsr_targets(torch.zeros(3, 6), torch.tensor([0, 1, 2]), torch.tensor([2, 1, 0]),
                      epsilon=0.2, classes=c)
    e2 = 0.2 * (1 - 1 / 6)
    # sample 0 (pid 0, back): p_id = 2/6; one other observed view (front) gets all of eps1
    e1 = 0.2 * (1 - 2 / 6)
    row0 = [e1, 1 - e1 - e2, e2 / 4, e2 / 4, e2 / 4, e2 / 4]
    # sample 1 (pid 1, side): no other observed view, eps1 stays on the true class
    row1 = [e2 / 5, e2 / 5, 1 - e2, e2 / 5, e2 / 5, e2 / 5]
    # sample 2 (pid 2, front): two other views share eps1 as in the dense case
    e1b = 0.2 * (1 - 3 / 6)
    row2 = [e2 / 3, e2 / 3, e2 / 3, 1 - e1b - e2, e1b / 2, e1b / 2]
    torch.testing.assert_close(q, torch.tensor([row0, row1, row2]))
    # static direction LSR on the same classes: 0.6 true, 0.15 per other observed view
    q = static_direction_lsr_targets(6, torch.tensor([0, 1]), torch.tensor([0, 1]), classes=c)
    torch.testing.assert_close(q, torch.tensor([[0.6, 0.15, 0.25 / 4, 0.25 / 4, 0.25 / 4, 0.25 / 4],
                                                [0.4 / 5, 0.4 / 5, 0.6, 0.4 / 5, 0.4 / 5, 0.4 / 5]]))
    with pytest.raises(ValueError, match='not an observed pair'):
        valsr_targets(torch.zeros(1, 6), torch.tensor([1]), torch.tensor([0]), classes=c)


def test_valsr_all_pairs_observed_equals_dense():
    from reid_ext.core.va_losses import pair_classes
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 12, generator=g)
    pids, views = torch.randint(0, 4, (6,), generator=g), torch.randint(0, 3, (6,), generator=g)
    torch.testing.assert_close(valsr_targets(logits, pids, views, classes=pair_classes(4, 3)),
                               valsr_targets(logits, pids, views))
