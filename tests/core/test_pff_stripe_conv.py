import pytest
import torch
import torch.nn as nn

from mm_ext.core.pruning import PrunedConv2d, StripeConv2d, choose_forms, masked_conv2d


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


@pytest.mark.parametrize('form', PrunedConv2d.FORMS)
@pytest.mark.parametrize('k,s,p', [(3, 1, 1), (3, 2, 1), (5, 2, 2), (5, 1, 1), (1, 2, 0)])
def test_pruned_conv_forms_equal_masked_conv(form, k, s, p):
    x, weight, mask, b = _case(k, s, 9, 6, seed=k * 10 + s)
    ref = masked_conv2d(x, weight, mask, b, s, p)
    pc = PrunedConv2d.from_dense(weight, mask, b, s, p, form=form)
    with torch.no_grad():
        torch.testing.assert_close(pc(x), ref)


@pytest.mark.parametrize('form', PrunedConv2d.FORMS)
@pytest.mark.parametrize('k,s,p', [(3, 1, 1), (3, 2, 1)])
def test_pruned_conv_forms_keep_channels_last(form, k, s, p):
    """A channels-last input gives the masked conv's values in a channels-last output (every form)."""
    x, weight, mask, b = _case(k, s, 9, 6, seed=k * 10 + s + 1)
    x = x.contiguous(memory_format=torch.channels_last)
    ref = masked_conv2d(x.contiguous(), weight, mask, b, s, p)
    pc = PrunedConv2d.from_dense(weight, mask, b, s, p, form=form)
    with torch.no_grad():
        y = pc(x)
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, ref)


def test_full_form_computes_dead_filters_as_their_bias():
    """'full' runs every filter (dead ones: zero weights), so dead outputs equal the bias, as 'dense' writes them."""
    x, weight, mask, b = _case(3, 1, 8, 8, seed=3)
    pc = PrunedConv2d.from_dense(weight, mask, b, 1, 1, form='full')
    with torch.no_grad():
        w, idx, _ = pc._dense_parts(x.dtype, every_filter=True)
        assert idx is None and w.shape[0] == 7 and not w[1].any()  # filter 1 is dead: zero weights, kept
        y = pc(x)
    torch.testing.assert_close(y[:, 1], b[1].expand_as(y[:, 1]))
    torch.testing.assert_close(y, masked_conv2d(x, weight, mask, b, 1, 1))


def test_choose_forms_stores_the_choice_in_the_state_dict():
    x, weight, mask, b = _case(3, 1, 9, 6)
    net = nn.Sequential(PrunedConv2d.from_dense(weight, mask, b, 1, 1), nn.ReLU(),
                        PrunedConv2d.from_dense(torch.randn(4, 7, 3, 3, dtype=x.dtype), mask[:4], None, 2, 1))
    chosen = choose_forms(net, x)
    assert set(chosen) == {'0', '2'} and all(f in PrunedConv2d.FORMS for f in chosen.values())
    net[0].form, net[2].form = 'gather', 'nchw'  # whatever was measured, the stored form is what runs
    sd = net.state_dict()
    assert PrunedConv2d.FORMS[int(sd['0.form_index'])] == 'gather'  # a tensor: DDP broadcasts state dicts
    fresh = nn.Sequential(PrunedConv2d(5, mask, 1, 1, bias=True, dtype=x.dtype), nn.ReLU(),
                          PrunedConv2d(7, mask[:4], 2, 1, dtype=x.dtype))
    fresh.load_state_dict(sd)
    assert (fresh[0].form, fresh[2].form) == ('gather', 'nchw')
    torch.testing.assert_close(fresh(x), net(x))
    with pytest.raises(ValueError, match='form must be one of'):
        PrunedConv2d(5, mask, form='auto')


def test_pruned_conv_dense_form_computes_only_live_filters():
    x, weight, mask, b = _case(3, 1, 8, 8, seed=4, bias=False)
    mask[2] = False
    mask[5] = False
    pc = PrunedConv2d.from_dense(weight, mask, None, 1, 1, form='dense')
    w, idx, _ = pc._dense_parts(x.dtype)
    assert w.shape[0] == 7 - 3 and idx.tolist() == [0, 3, 4, 6]  # filters 1, 2, 5 dead
    with torch.no_grad():
        torch.testing.assert_close(pc(x), masked_conv2d(x, weight, mask, None, 1, 1))


def test_pruned_conv_dense_form_crops_rows_and_columns_separately():
    x, weight, mask, b = _case(5, 1, 9, 7, seed=5, bias=False)
    mask[:] = False
    mask[:, 2, :] = True  # the middle row only: 5x5 -> 1x5
    mask[0, 2, 0] = False
    pc = PrunedConv2d.from_dense(weight, mask, None, 1, 2, form='dense')
    assert pc.crop_radii() == (0, 2) and pc._dense_parts(x.dtype)[0].shape[2:] == (1, 5)
    with torch.no_grad():
        torch.testing.assert_close(pc(x), masked_conv2d(x, weight, mask, None, 1, 2))


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


@pytest.mark.parametrize('form', PrunedConv2d.FORMS)
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_every_form_follows_low_precision_dtype(dtype, form):
    """No skip: a dtype error in any form must fail the test."""
    x, weight, mask, b = _case(3, 2, 8, 8, dtype=torch.float32)
    pc = PrunedConv2d.from_dense(weight.to(dtype), mask, b.to(dtype), 2, 1, form=form)
    y = pc(x.to(dtype))
    assert y.dtype == dtype
    ref = masked_conv2d(x, weight.to(dtype).float(), mask, b.to(dtype).float(), 2, 1)
    torch.testing.assert_close(y.float(), ref, atol=0.1, rtol=0.02)


@pytest.mark.parametrize('form', PrunedConv2d.FORMS)
def test_every_form_is_autocast_safe(form):
    """Under CPU autocast (bf16) every form computes in bf16 like nn.Conv2d, with fp32 weights."""
    x, weight, mask, b = _case(3, 1, 8, 8, dtype=torch.float32)
    pc = PrunedConv2d.from_dense(weight, mask, b, 1, 1, form=form)
    ref_conv = nn.Conv2d(5, 7, 3, 1, 1)
    with torch.no_grad():
        ref_conv.weight.copy_(weight * mask.unsqueeze(1))
        ref_conv.bias.copy_(b)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        y = pc(x)
        ref = ref_conv(x)
    assert y.dtype == ref.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), ref.float(), atol=0.1, rtol=0.02)


@pytest.mark.cuda
def test_stripe_conv_cuda_fp16():
    x, weight, mask, b = _case(3, 2, 8, 8, dtype=torch.float32)
    dev = torch.device('cuda')
    pc = PrunedConv2d.from_dense(weight.half().to(dev), mask.to(dev), b.half().to(dev), 2, 1)
    with torch.no_grad():
        choose_forms(pc, x.half().to(dev))
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


@pytest.mark.parametrize('form', PrunedConv2d.FORMS)
def test_every_form_trains_like_the_masked_conv(form):
    """Fine-tuning: gradients of stored stripes, bias and input equal those of the masked dense conv."""
    x, weight, mask, b = _case(3, 2, 7, 7)
    mask[4] = False  # a dead filter: its output is the bias
    pc = PrunedConv2d.from_dense(weight, mask, b, 2, 1, form=form)
    x1 = x.clone().requires_grad_()
    pc(x1).square().sum().backward()
    x2 = x.clone().requires_grad_()
    w2, b2 = weight.clone().requires_grad_(), b.clone().requires_grad_()
    masked_conv2d(x2, w2, mask, b2, 2, 1).square().sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    torch.testing.assert_close(pc.bias.grad, b2.grad)
    torch.testing.assert_close(pc.stripe_weight.grad, StripeConv2d._gather_stripes(w2.grad, mask))


def _fused_case(k, s, h, w, b, seed, c=6, n=11, keep=0.4):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, h, w, generator=g)
    weight = torch.randn(n, c, k, k, generator=g)
    mask = torch.rand(n, k, k, generator=g) < keep
    mask[2] = False  # a dead filter: outputs its bias
    return x, weight, mask, torch.randn(n, generator=g)


@pytest.mark.parametrize('k,s,p', [(3, 1, 1), (3, 2, 1), (5, 1, 2), (5, 2, 2), (1, 1, 0), (1, 2, 0), (5, 1, 1)])
@pytest.mark.parametrize('hw', [(9, 6), (17, 19), (4, 3), (6, 9)])  # (6, 9), k 5 p 1: images in lanes, W >= 8
@pytest.mark.parametrize('b', [1, 9])  # 9: images-in-lanes layout with a partial group of 8 (narrow maps)
@pytest.mark.parametrize('c', [6, 10])  # 10: the 8x8-transposed channels-last copies into the scratch
def test_fused_kernel_equals_masked_conv(k, s, p, hw, b, c):
    """The compiled 'fused' kernel (float32 CPU inference) against the masked dense conv, every layout."""
    x, weight, mask, bias = _fused_case(k, s, *hw, b, seed=k * 100 + s * 10 + hw[0] + b, c=c)
    ref = masked_conv2d(x, weight, mask, bias, s, p)
    pc = PrunedConv2d.from_dense(weight, mask, bias, s, p, form='fused')
    with torch.no_grad():
        assert pc.fused_runs_kernel(x), 'the stripe-conv kernel could not be built (see the RuntimeWarning)'
        for xin in (x, x.contiguous(memory_format=torch.channels_last)):
            y = pc(xin)
            assert y.dtype == torch.float32 and y.shape == ref.shape
            assert y.is_contiguous(memory_format=torch.channels_last) == (xin.stride(1) == 1 and x.shape[1] > 1)
            torch.testing.assert_close(y, ref)
        sliced = torch.cat([x, x], 3)[..., 1:1 + hw[1]]  # non-contiguous strides
        torch.testing.assert_close(pc(sliced), masked_conv2d(sliced, weight, mask, bias, s, p))


def test_fused_kernel_without_bias_all_dead_threads_and_weight_updates():
    x, weight, mask, _ = _fused_case(3, 1, 10, 12, 3, seed=7, c=20, n=13)
    pc = PrunedConv2d.from_dense(weight, mask, None, 1, 1, form='fused')
    with torch.no_grad():
        torch.testing.assert_close(pc(x), masked_conv2d(x, weight, mask, None, 1, 1))
        threads = torch.get_num_threads()
        torch.set_num_threads(2)
        try:
            torch.testing.assert_close(pc(x), masked_conv2d(x, weight, mask, None, 1, 1))
        finally:
            torch.set_num_threads(threads)
        pc.stripe_weight.mul_(2)  # in-place update: the kernel's weight tables are rebuilt
        torch.testing.assert_close(pc(x), masked_conv2d(x, 2 * weight, mask, None, 1, 1))
    dead = PrunedConv2d.from_dense(weight, torch.zeros_like(mask), torch.arange(13.), 1, 1, form='fused')
    with torch.no_grad():
        torch.testing.assert_close(dead(x), torch.arange(13.).view(1, -1, 1, 1).expand(3, 13, 10, 12))


def test_fused_form_falls_back_where_the_kernel_does_not_apply():
    """Autograd or another dtype: 'fused' runs the 'nchw' stripe form (differentiable, any dtype)."""
    x, weight, mask, bias = _fused_case(3, 1, 8, 8, 2, seed=8)
    pc = PrunedConv2d.from_dense(weight, mask, bias, 1, 1, form='fused')
    assert not pc.fused_runs_kernel(x)  # grad enabled and trainable weights
    assert not pc.fused_runs_kernel(x.double())
    pc(x).sum().backward()
    assert pc.stripe_weight.grad is not None


def test_fused_kernel_relu_epilogue():
    """The kernel's optional ReLU on the output write (``_ckernel.fused_conv(..., relu=True)``)."""
    from mm_ext.core.pruning import _ckernel
    x, weight, mask, bias = _fused_case(3, 1, 9, 16, 2, seed=9)
    pc = PrunedConv2d.from_dense(weight, mask, bias, 1, 1, form='fused')
    with torch.no_grad():
        y = _ckernel.fused_conv(x.contiguous(memory_format=torch.channels_last), pc._fused_tables(), 11, 3, 1, 1,
                                relu=True)
    assert y is not None, 'the stripe-conv kernel could not be built (see the RuntimeWarning)'
    torch.testing.assert_close(y, masked_conv2d(x, weight, mask, bias, 1, 1).relu())


def test_fused_form_without_the_kernel_runs_nchw_and_is_never_chosen(monkeypatch):
    """No C compiler (or MM_EXT_PFF_KERNEL=0): 'fused' gives the same values through 'nchw', and
    choose_forms does not time it."""
    from mm_ext.core.pruning import _ckernel
    monkeypatch.setattr(_ckernel, '_lib', None)
    monkeypatch.setattr(_ckernel, '_tried', True)
    x, weight, mask, bias = _fused_case(3, 2, 9, 10, 3, seed=10)
    pc = PrunedConv2d.from_dense(weight, mask, bias, 2, 1, form='fused')
    with torch.no_grad():
        assert not pc.fused_runs_kernel(x)
        torch.testing.assert_close(pc(x), masked_conv2d(x, weight, mask, bias, 2, 1))
        assert choose_forms(nn.Sequential(pc), x)['0'] != 'fused'
