import pytest
import torch
import torch.nn as nn

from mm_ext.core.pruning import FilterSkeletonConv2d, FilterSkeletonRegularizer


def _model():
    torch.manual_seed(0)
    model = nn.Sequential(FilterSkeletonConv2d(2, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3), nn.ReLU())
    with torch.no_grad():
        model[0].filter_skeleton.copy_(torch.tensor([
            [[0.5, -0.3, 0.005], [0.2, 1.0, -0.008], [0.04, 0.0, 0.3]],
            [[0.009, 0.0, -0.002], [0.001, 0.0, 0.0], [0.0, 0.0, -0.01]],  # all <= delta: dead filter
            [[-0.7, 0.6, 0.02], [0.011, -0.5, 0.9], [0.1, 0.2, 0.3]]]))
        model[1].weight.fill_(0.5)
        model[1].bias.fill_(0.1)
    return model


@pytest.mark.parametrize('l1_mode', ['grad', 'loss'])
def test_regularizer_one_sgd_step_hand_computed(l1_mode):
    alpha, delta, lr = 0.01, 0.01, 0.1
    model = _model()
    x = torch.randn(4, 2, 5, 5)
    fs0 = model[0].filter_skeleton.detach().clone()
    gamma0 = model[1].weight.detach().clone()
    # reference gradients of the task loss
    ref = _model()
    ref(x).square().mean().backward()
    g_fs, g_gamma = ref[0].filter_skeleton.grad.clone(), ref[1].weight.grad.clone()

    reg = FilterSkeletonRegularizer(model, alpha, delta, bn_map={'0': '1'}, l1_mode=l1_mode)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    reg.attach(opt)
    loss = model(x).square().mean()
    if l1_mode == 'loss':
        loss = loss + reg.l1_penalty()
    loss.backward()
    opt.step()

    mask = fs0.abs() > delta
    expected_fs = (fs0 - lr * (g_fs + alpha * torch.sign(fs0))) * mask
    torch.testing.assert_close(model[0].filter_skeleton.detach(), expected_fs)
    alive = torch.tensor([1.0, 0.0, 1.0])
    torch.testing.assert_close(model[1].weight.detach(), (gamma0 - lr * g_gamma) * alive)
    assert model[1].bias[1] == 0
    assert reg.stats()['filters_kept'] == 2 and reg.stats()['stripes_kept'] == int((expected_fs.abs() > delta).sum())
    reg.detach()
    assert not opt._optimizer_step_pre_hooks


@pytest.mark.parametrize('reset_dead', [True, False])
def test_regularizer_momentum_leak_option(reset_dead):
    model = _model()
    reg = FilterSkeletonRegularizer(model, 0.0, 0.01, l1_mode='grad', reset_dead=reset_dead)
    opt = torch.optim.SGD([model[0].filter_skeleton], lr=0.1, momentum=0.9)
    reg.attach(opt)
    x = torch.randn(2, 2, 5, 5)
    model(x).sum().backward()
    opt.step()
    buf = opt.state[model[0].filter_skeleton]['momentum_buffer'][0, 0, 0].item()
    assert buf != 0
    with torch.no_grad():
        model[0].filter_skeleton[0, 0, 0] = 0.001  # falls below delta before the next step
    opt.zero_grad()
    model(x).sum().backward()
    opt.step()
    value = model[0].filter_skeleton[0, 0, 0].item()
    if reset_dead:
        assert value == 0.0 and opt.state[model[0].filter_skeleton]['momentum_buffer'][0, 0, 0] == 0
    else:  # official behaviour: the momentum buffer moves the zeroed entry once more
        assert value == pytest.approx(-0.1 * 0.9 * buf, rel=1e-5)


def test_regularizer_rejects_bad_arguments():
    with pytest.raises(ValueError, match='l1_mode'):
        FilterSkeletonRegularizer(_model(), l1_mode='l2')
    with pytest.raises(ValueError, match='bn_map'):
        FilterSkeletonRegularizer(_model(), bn_map={'7': '1'})
