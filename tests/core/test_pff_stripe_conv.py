import pytest
import torch
import torch.nn as nn

from mm_ext.core.pruning import PrunedConv2d, StripeConv2d, masked_conv2d


def _case(k, s, h, w, dtype=torch.float64, seed=0, keep=0.5, bias=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 5, h, w, generator=g, dtype=dtype)
    weight = torch.randn(7, 5, k, k, generator=g, dtype=dtype)
    mask = torch.rand(7, k, k, generator=g) < keep
    mask[1] = False  # an empty filter
    b = torch.randn(7, generator=g, dtype=dtype) if bias else None
    return x, weight, mask, b


@pytest.mark.parametrize('k', [1, 3, 5])
@pytest.mark.parametrize('s', [1, 2])
@pytest.mark.parametrize('hw', [(8, 8), (7, 9)])
@pytest.mark.parametrize('impl', ['flat', 'gather', 'nchw'])
def test_stripe_conv_equals_nn_conv2d_with_zeroed_stripes(k, s, hw, impl):
    x, weight, mask, b = _case(k, s, *hw)
    ref_conv = nn.Conv2d(5, 7, k, s, k // 2).double()
    with torch.no_grad():
        ref_conv.weight.copy_(weight * mask.unsqueeze(1))
        ref_conv.bias.copy_(b)
    sc = StripeConv2d.from_dense(weight, mask, b, s, k // 2, impl=impl)
    assert sc.num_stripes == int(mask.sum())
    y = sc(x)
    assert y.shape == ref_conv(x).shape
    torch.testing.assert_close(y, ref_conv(x))


@pytest.mark.parametrize('form', ['dense', 'flat', 'gather', 'nchw', 'auto'])
@pytest.mark.parametrize('k,s,p', [(3, 1, 1), (3, 2, 1), (5, 2, 2), (5, 1, 1), (1, 2, 0)])
def test_pruned_conv_forms_equal_masked_conv(form, k, s, p):
    x, weight, mask, b = _case(k, s, 9, 6, seed=k * 10 + s)
    ref = masked_conv2d(x, weight, mask, b, s, p)
    pc = PrunedConv2d.from_dense(weight, mask, b, s, p, form=form)
    with torch.no_grad():
        torch.testing.assert_close(pc(x), ref)
    if form == 'auto':
        assert len(pc.choices) == 1 and next(iter(pc.choices.values())) in PrunedConv2d.FORMS[1:]


def test_pruned_conv_dense_form_crops_kernel_to_live_box():
    x, weight, mask, b = _case(5, 1, 8, 8, seed=3, bias=False)
    mask[:] = False
    mask[:, 2, 2] = True  # only centre stripes
    mask[0, 1, 3] = True  # one stripe in the 3x3 ring
    pc = PrunedConv2d.from_dense(weight, mask, None, 1, 2, form='dense')
    assert pc.box_radius() == 1
    with torch.no_grad():
        torch.testing.assert_close(pc(x), masked_conv2d(x, weight, mask, None, 1, 2))


def test_stripe_conv_all_dead_gives_bias_only():
    x, weight, mask, b = _case(3, 1, 6, 6)
    mask[:] = False
    for impl in StripeConv2d.IMPLS:
        y = StripeConv2d.from_dense(weight, mask, b, 1, 1, impl=impl)(x)
        torch.testing.assert_close(y, b.view(1, -1, 1, 1).expand_as(y))


def test_stripe_conv_gradients_match_masked_conv():
    x, weight, mask, b = _case(3, 2, 7, 7)
    sc = StripeConv2d.from_dense(weight, mask, b, 2, 1)
    x1 = x.clone().requires_grad_()
    sc(x1).square().sum().backward()
    x2 = x.clone().requires_grad_()
    w2 = weight.clone().requires_grad_()
    masked_conv2d(x2, w2, mask, b, 2, 1).square().sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    torch.testing.assert_close(sc.stripe_weight.grad, StripeConv2d._gather_stripes(w2.grad, mask))


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_stripe_conv_follows_low_precision_dtype(dtype):
    x, weight, mask, b = _case(3, 1, 8, 8, dtype=torch.float32, bias=False)
    sc = StripeConv2d.from_dense(weight.to(dtype), mask, None, 1, 1)
    try:
        y = sc(x.to(dtype))
    except RuntimeError as exc:  # CPU build without that matmul kernel
        pytest.skip(str(exc))
    assert y.dtype == dtype
    ref = masked_conv2d(x, weight.to(dtype).float(), mask, None, 1, 1)
    torch.testing.assert_close(y.float(), ref, atol=0.1, rtol=0.02)


@pytest.mark.cuda
def test_stripe_conv_cuda_fp16():
    x, weight, mask, b = _case(3, 2, 8, 8, dtype=torch.float32)
    dev = torch.device('cuda')
    pc = PrunedConv2d.from_dense(weight.half().to(dev), mask.to(dev), b.half().to(dev), 2, 1, form='auto')
    with torch.no_grad():
        y = pc(x.half().to(dev))
    ref = masked_conv2d(x, weight.half().float(), mask, b.half().float(), 2, 1)
    torch.testing.assert_close(y.float().cpu(), ref, atol=0.05, rtol=0.01)


def test_stripe_conv_rebuilds_from_state_dict():
    x, weight, mask, b = _case(3, 1, 6, 6)
    sc = StripeConv2d.from_dense(weight, mask, b, 1, 1)
    sd = sc.state_dict()
    assert set(sd) == {'stripe_mask', 'stripe_weight', 'bias'}
    re = StripeConv2d(5, sd['stripe_mask'], 1, 1, bias=True, dtype=torch.float64)
    re.load_state_dict(sd)
    torch.testing.assert_close(re(x), sc(x))


def test_stripe_conv_rejects_wrong_channels():
    x, weight, mask, b = _case(3, 1, 6, 6)
    sc = StripeConv2d.from_dense(weight, mask, b, 1, 1)
    with pytest.raises(ValueError, match='expected input'):
        sc(x[:, :3])
