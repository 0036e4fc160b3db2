"""Parity pieces: BN-C3D, official-checkpoint conversion, Kinetics double normalisation, k-NN,
and the statistics / probe of the scene-bias experiment, against hand-built references."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from mm_ext.core.video import (BNC3D, BNInceptionI3D, ProjectionHead, convert_official_state_dict,
                               double_normalization_mean_std, knn_classify, linear_probe,
                               paired_summary, summarize, t_quantile)
from mm_ext.core.video.bn_inception_i3d import I3D_INCEPTION_BLOCKS
from mm_ext.core.video.evaluation import fit_logistic


def test_bn_c3d_equals_a_hand_built_sequential():
    torch.manual_seed(0)
    net = BNC3D(width_ratio=0.125)
    net.init_weights()
    net.eval()
    names = ['1', '2', '3a', '3b', '4a', '4b', '5a', '5b']
    layers = []
    for n in names:
        layers += [getattr(net, f'conv{n}'), getattr(net, f'bn{n}'), nn.ReLU()]
        if n == '1':
            layers.append(nn.MaxPool3d((1, 2, 2), (1, 2, 2)))
        elif n in ('2', '3b', '4b'):
            layers.append(nn.MaxPool3d(2, 2))
    x = torch.randn(2, 3, 16, 32, 32)
    ref = nn.Sequential(*layers)(x)
    out = net(x)
    assert out.shape == (2, 64, 2, 2, 2) and net.out_channels == 64
    torch.testing.assert_close(out, ref)
    # the retrieval feature is the global average of conv5b ("pool5"), 512-d at full width
    assert BNC3D().out_channels == 512


def _official_c3d(width=0.125):
    """State dict in the release's layout: DataParallel(TCN(C3D)) with the id_head."""
    net = BNC3D(width_ratio=width)
    net.init_weights()
    sd = {f'module.base_model.{k}': v for k, v in net.state_dict().items()}
    head = nn.Linear(net.out_channels, 128)
    sd['module.base_model.id_head.2.weight'] = head.weight.detach()
    sd['module.base_model.id_head.2.bias'] = head.bias.detach()
    return sd, net, head


def test_convert_c3d_checkpoint_gives_the_same_features():
    torch.manual_seed(0)
    sd, net, head = _official_c3d()
    out = convert_official_state_dict(sd, 'c3d')
    model = nn.Module()
    model.backbone = BNC3D(width_ratio=0.125)
    model.neck = ProjectionHead(net.out_channels, 128)
    model.key_backbone = BNC3D(width_ratio=0.125)
    model.key_neck = ProjectionHead(net.out_channels, 128)
    model.load_state_dict(out, strict=True)
    model.eval()
    net.eval()
    x = torch.randn(1, 3, 16, 32, 32)
    emb = model.neck(model.backbone(x))
    ref = torch.nn.functional.normalize(head(net(x).mean(dim=(2, 3, 4))), dim=1)
    torch.testing.assert_close(emb, ref)
    torch.testing.assert_close(model.key_neck(model.key_backbone(x)), ref)


def _official_i3d_keys(width=1.0):
    """The release's I3D layout (Unit3Dpy: conv3d + batch3d; Mixed: branch_0..3), shapes by hand."""
    def c(v):
        return max(1, int(round(v * width)))

    shapes = {}

    def unit(name, cin, cout, k):
        shapes[f'{name}.conv3d.weight'] = (cout, cin, k, k, k)
        for leaf in ('weight', 'bias', 'running_mean', 'running_var'):
            shapes[f'{name}.batch3d.{leaf}'] = (cout,)
        shapes[f'{name}.batch3d.num_batches_tracked'] = ()

    unit('conv3d_1a_7x7', 3, c(64), 7)
    unit('conv3d_2b_1x1', c(64), c(64), 1)
    unit('conv3d_2c_3x3', c(64), c(192), 3)
    for spec in I3D_INCEPTION_BLOCKS:
        if len(spec) == 1:
            continue
        name, cin, b0, b1r, b1, b2r, b2, bp = spec
        cin = c(cin)
        unit(f'{name}.branch_0', cin, c(b0), 1)
        unit(f'{name}.branch_1.0', cin, c(b1r), 1)
        unit(f'{name}.branch_1.1', c(b1r), c(b1), 3)
        unit(f'{name}.branch_2.0', cin, c(b2r), 1)
        unit(f'{name}.branch_2.1', c(b2r), c(b2), 3)
        unit(f'{name}.branch_3.1', cin, c(bp), 1)
    shapes['id_head.2.weight'] = (128, c(1024))
    shapes['id_head.2.bias'] = (128,)
    shapes['conv3d_0c_1x1_custom.conv3d.weight'] = (101, c(1024), 7, 1, 1)  # classifier: dropped
    return shapes


def test_convert_i3d_checkpoint_loads_strictly_and_moves_each_tensor():
    g = torch.Generator().manual_seed(0)
    shapes = _official_i3d_keys(0.25)
    sd = {f'module.base_model.{k}': (torch.randn(s, generator=g) if s else torch.tensor(3))
          for k, s in shapes.items()}
    out = convert_official_state_dict(sd, 'i3d', with_key_encoder=False)
    net = BNInceptionI3D(width_ratio=0.25)
    backbone = {k[len('backbone.'):]: v for k, v in out.items() if k.startswith('backbone.')}
    net.load_state_dict(backbone, strict=True)  # every key and shape matches
    sd_net = net.state_dict()
    pairs = {'conv3d_1a_7x7.conv3d.weight': 'stem.0.0.weight',
             'conv3d_2c_3x3.batch3d.running_var': 'stem.3.1.running_var',
             'mixed_4b.branch_1.1.conv3d.weight': 'blocks.mixed_4b.b1.1.0.weight',
             'mixed_5c.branch_3.1.batch3d.bias': 'blocks.mixed_5c.b3.1.1.bias',
             'mixed_3b.branch_0.conv3d.weight': 'blocks.mixed_3b.b0.0.weight'}
    for old, new in pairs.items():
        assert torch.equal(sd_net[new], sd[f'module.base_model.{old}']), old
    assert torch.equal(out['neck.fc.weight'], sd['module.base_model.id_head.2.weight'])
    assert not any('conv3d_0c' in k for k in out)


def test_convert_rejects_foreign_keys():
    with pytest.raises(KeyError, match='layer9.0.foo'):
        convert_official_state_dict({'module.layer9.0.foo.weight': torch.zeros(1),
                                     'module.conv1.weight': torch.zeros(1)}, 'r3d')
    with pytest.raises(ValueError, match='arch'):
        convert_official_state_dict({'conv1.weight': torch.zeros(1)}, 'vgg')


def test_double_normalization_equals_the_two_step_release_transform():
    mean, std = double_normalization_mean_std()
    px = torch.rand(3, 4, 5) * 255
    im_mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    im_std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    two_step = ((px / 127.5 - 1.0) - im_mean) / im_std  # [-1, 1], then ImageNet
    one_step = (px - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    torch.testing.assert_close(one_step, two_step, rtol=1e-5, atol=1e-5)


def test_knn_hand_computed():
    gallery = torch.tensor([[1., 0.], [0.8, 0.6], [0., 1.], [-1., 0.]])
    labels = torch.tensor([0, 1, 1, 2])
    q = torch.tensor([[0.9, 0.1]])
    votes = knn_classify(q, gallery, labels, k=2, temperature=0.5, num_classes=3)
    qn = q / q.norm()
    s0 = float(qn @ gallery[0])
    s1 = float(qn @ gallery[1])
    expected = torch.tensor([[math.exp(s0 / 0.5), math.exp(s1 / 0.5), 0.0]])
    torch.testing.assert_close(votes, expected)
    # k = 3 brings in label 1 again: 1 wins over 0
    assert knn_classify(q, gallery, labels, k=3, temperature=10.0).argmax().item() == 1


def test_statistics_against_published_t_table_and_numpy():
    # Student t 0.975 quantiles from the standard table
    for df, ref in ((1, 12.706), (4, 2.776), (9, 2.262), (30, 2.042)):
        assert abs(t_quantile(0.975, df) - ref) < 1e-3
    v = [50.0, 53.5, 49.0, 55.0, 51.5]
    s = summarize(v)
    assert s['std'] == pytest.approx(np.std(v, ddof=1))
    assert s['half'] == pytest.approx(t_quantile(0.975, 4) * np.std(v, ddof=1) / math.sqrt(5))
    d = paired_summary([2, 4, 6], [1, 1, 1])
    assert d['mean'] == pytest.approx(3.0) and d['std'] == pytest.approx(2.0)
    with pytest.raises(ValueError, match='pair'):
        paired_summary([1], [1, 2])


def test_fit_logistic_reaches_the_stationary_point():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(60, 5, generator=g).double()
    y = torch.randint(0, 3, (60,), generator=g)
    w, b = fit_logistic(z, y, 0.1, 3)
    w.requires_grad_(), b.requires_grad_()
    loss = torch.nn.functional.cross_entropy(z @ w + b, y) + 0.1 * (w * w).sum()
    gw, gb = torch.autograd.grad(loss, [w, b])
    assert gw.abs().max() < 1e-6 and gb.abs().max() < 1e-6


def test_linear_probe_cross_validation():
    g = torch.Generator().manual_seed(0)
    # informative: the class is the sign pattern of dimension 0
    y = torch.arange(80) % 2
    x = torch.randn(80, 4, generator=g)
    x[:, 0] += 4 * (2 * y - 1)
    xt = torch.randn(40, 4, generator=g)
    yt = torch.arange(40) % 2
    xt[:, 0] += 4 * (2 * yt - 1)
    (acc,), _ = linear_probe(x, y, [(xt, yt)])
    assert acc == 100.0
    # features without information: every L2 ties in cross-validation, the strongest is taken
    _, l2 = linear_probe(torch.zeros(30, 6), torch.arange(30) % 3, [], l2_grid=(1e-4, 10.0, 0.1),
                         folds=3)
    assert l2 == 10.0


def test_convert_tool_writes_an_mmengine_checkpoint(tmp_path):
    import importlib.util
    from pathlib import Path
    torch.manual_seed(0)
    sd, net, _ = _official_c3d()
    src = tmp_path / 'c3d_official.pth.tar'
    torch.save({'model': sd, 'epoch': 7}, src)
    tool_path = Path(__file__).resolve().parents[2] / 'tools' / 'convert_dsm_be_checkpoint.py'
    spec = importlib.util.spec_from_file_location('convert_tool', tool_path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main([str(src), str(tmp_path / 'out.pth'), '--arch', 'c3d', '--no-key-encoder']) == 0
    ckpt = torch.load(tmp_path / 'out.pth', weights_only=True)
    assert ckpt['meta']['arch'] == 'c3d'
    assert set(ckpt['state_dict']) == {f'backbone.{k}' for k in net.state_dict()} | \
        {'neck.fc.weight', 'neck.fc.bias'}
    with pytest.raises(SystemExit, match='c3d'):  # an I3D checkpoint is not a C3D one
        torch.save({'model': {'module.conv3d_1a_7x7.conv3d.weight': torch.zeros(1)}}, src)
        tool.main([str(src), str(tmp_path / 'bad.pth'), '--arch', 'c3d'])


def _official_contrast(k=37, d=128, seed=0):
    """The release's MemoryMoCo state: params [-1] (softmax mode) and a (K, D) memory of keys."""
    g = torch.Generator().manual_seed(seed)
    stdv = 1.0 / math.sqrt(d / 3)
    return {'params': torch.tensor([-1.0]),
            'memory': torch.rand(k, d, generator=g) * 2 * stdv - stdv}


def test_convert_queue_gives_the_release_logits_and_continues_fifo():
    from mm_ext.core.video import enqueue_wraparound, infonce_with_extra_negative
    from mm_ext.core.video.convert import convert_official_queue
    contrast = _official_contrast()
    out = convert_official_queue(contrast)
    assert out['queue'].shape == (37, 128) and out['queue_ptr'].tolist() == [0]
    g = torch.Generator().manual_seed(1)
    q, k, n = (torch.nn.functional.normalize(torch.randn(4, 128, generator=g), dim=1)
               for _ in range(3))
    _, logits = infonce_with_extra_negative(q, k, out['queue'], n, 0.07)
    # the release: cat(q.k, memory @ q^T (transposed), q.n) / T
    mem = contrast['memory']
    ref = torch.cat([(q * k).sum(1, keepdim=True), (mem @ q.t()).t(), (q * n).sum(1, keepdim=True)],
                    1) / 0.07
    torch.testing.assert_close(logits, ref)
    # the release's next write: rows index .. index + B - 1 (mod K); index is not saved -> 0 here
    enqueue_wraparound(out['queue'], out['queue_ptr'], k)
    torch.testing.assert_close(out['queue'][:4], k)
    torch.testing.assert_close(out['queue'][4:], mem[4:])
    assert out['queue_ptr'].item() == 4
    assert convert_official_queue(contrast, queue_ptr=35)['queue_ptr'].item() == 35
    assert not out['queue'].data_ptr() == contrast['memory'].data_ptr()  # a copy


def test_convert_queue_refuses_cmc_banks_and_bad_pointers():
    from mm_ext.core.video.convert import convert_official_queue
    cmc = {'params': torch.tensor([4096, 0.07, -1, -1, 0.5]), 'memory_l': torch.zeros(10, 128),
           'memory_ab': torch.zeros(10, 128)}
    with pytest.raises(KeyError, match='memory_ab'):
        convert_official_queue(cmc)
    with pytest.raises(ValueError, match='queue_ptr'):
        convert_official_queue(_official_contrast(k=5), queue_ptr=5)
    with pytest.raises(ValueError, match=r'\(K, D\)'):
        convert_official_queue({'memory': torch.zeros(5)})


def test_convert_tool_converts_the_queue(tmp_path):
    import importlib.util
    from pathlib import Path
    torch.manual_seed(0)
    sd, net, _ = _official_c3d()
    contrast = _official_contrast(k=11)
    src = tmp_path / 'c3d_official.pth.tar'
    torch.save({'model': sd, 'contrast': contrast, 'epoch': 3}, src)
    tool_path = Path(__file__).resolve().parents[2] / 'tools' / 'convert_dsm_be_checkpoint.py'
    spec = importlib.util.spec_from_file_location('convert_tool', tool_path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main([str(src), str(tmp_path / 'out.pth'), '--arch', 'c3d',
                      '--queue-ptr', '2']) == 0
    st = torch.load(tmp_path / 'out.pth', weights_only=True)['state_dict']
    assert torch.equal(st['queue'], contrast['memory']) and st['queue_ptr'].tolist() == [2]
    assert tool.main([str(src), str(tmp_path / 'noq.pth'), '--arch', 'c3d', '--no-queue']) == 0
    assert 'queue' not in torch.load(tmp_path / 'noq.pth', weights_only=True)['state_dict']
