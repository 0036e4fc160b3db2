import torch
import torch.nn as nn

from mm_ext.core.pruning import (add_l1_sign_grad, fs_l1_penalty, mask_bn_by_liveness, threshold_skeleton,
                                 zero_dead_momentum)


def test_l1_sign_grad_equals_autograd_of_penalty():
    fs = nn.Parameter(torch.tensor([[[0.5, -0.2], [0.0, 3.0]]]))
    fs.grad = torch.tensor([[[1.0, 1.0], [1.0, 1.0]]])
    add_l1_sign_grad(fs, 0.1)
    # hand-computed: grad + 0.1 * sign(I), sign(0) = 0
    assert torch.allclose(fs.grad, torch.tensor([[[1.1, 0.9], [1.0, 1.1]]]))
    fs2 = nn.Parameter(fs.detach().clone())
    fs_l1_penalty([fs2], 0.1).backward()
    assert torch.allclose(fs2.grad, 0.1 * torch.sign(fs.detach()))


def test_threshold_zeroes_values_and_grads_at_or_below_delta():
    fs = nn.Parameter(torch.tensor([[[0.25, -0.125], [0.0625, -0.5]]]))
    fs.grad = torch.full_like(fs, 2.0)
    mask = threshold_skeleton(fs, 0.125)
    assert mask.tolist() == [[[True, False], [False, True]]]  # |I| = δ is dead
    assert fs.detach().abs().tolist() == [[[0.25, 0.0], [0.0, 0.5]]]
    assert fs.grad.tolist() == [[[2.0, 0.0], [0.0, 2.0]]]


def test_bn_liveness_mask_and_momentum_reset():
    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, 0.6, 0.7]))
        bn.bias.copy_(torch.tensor([0.1, 0.2, 0.3]))
    bn.weight.grad = torch.ones(3)
    bn.bias.grad = torch.ones(3)
    mask_bn_by_liveness(bn, torch.tensor([True, False, True]))
    assert torch.allclose(bn.weight, torch.tensor([0.5, 0.0, 0.7]))
    assert torch.allclose(bn.bias, torch.tensor([0.1, 0.0, 0.3]))
    assert bn.weight.grad.tolist() == [1.0, 0.0, 1.0] and bn.bias.grad.tolist() == [1.0, 0.0, 1.0]

    p = nn.Parameter(torch.ones(2, 2))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = torch.ones(2, 2)
    opt.step()
    keep = torch.tensor([[True, False], [True, True]])
    zero_dead_momentum(opt, p, keep)
    assert opt.state[p]['momentum_buffer'].tolist() == [[1.0, 0.0], [1.0, 1.0]]
