"""Key-encoder update and enqueue once per optimiser step (gradient accumulation), shuffle-BN /
SyncBN switches, BN-C3D, official-checkpoint conversion and k-NN / multi-clip evaluation."""
import pytest
import torch

pytest.importorskip('mmaction')

import mm_ext.mmaction  # noqa: F401,E402
from mmaction.registry import METRICS, MODELS  # noqa: E402
from mmengine.optim import OptimWrapper  # noqa: E402

from _video_ssl_helpers import ViewsDataset, model_cfg  # noqa: E402

B = 2


def _batch(ds, start):
    return dict(inputs=[ds[i]['inputs'] for i in range(start, start + B)],
                data_samples=[ds[i]['data_samples'] for i in range(start, start + B)])


def _keys(model, data):
    """What the key encoder gives for the batch's positives (BN uses batch statistics)."""
    with torch.no_grad():
        x = model.data_preprocessor(data, training=True)['inputs']
        return model._encode_key(x[:, 1])[1]


@pytest.mark.parametrize('accumulate', [1, 2])
def test_momentum_update_and_enqueue_once_per_optimizer_step(accumulate):
    torch.manual_seed(0)
    model = MODELS.build(model_cfg('dsm', queue_len=7, momentum=0.9))
    model.init_weights()
    model.train()
    ow = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.5), accumulative_counts=accumulate)
    ds = ViewsDataset(n=2 * B * accumulate)
    q0 = model.queue.clone()
    k_params0 = [p.clone() for p in model.key_backbone.parameters()]
    expected_keys = []
    for i in range(accumulate):
        data = _batch(ds, i * B)
        expected_keys.append(_keys(model, data))
        model.train_step(data, ow)
        if i < accumulate - 1:  # inside the accumulation window: nothing moves
            assert model.queue_ptr.item() == 0 and torch.equal(model.queue, q0)
            for p, p0 in zip(model.key_backbone.parameters(), k_params0):
                assert torch.equal(p, p0)
    # one optimiser step: the key encoder moved once, k <- m k + (1 - m) q(after the step)
    for p, p0, q in zip(model.key_backbone.parameters(), k_params0, model.backbone.parameters()):
        torch.testing.assert_close(p, 0.9 * p0 + 0.1 * q, rtol=1e-6, atol=1e-7)
    # ... and the keys of all micro-batches entered the queue together, in order
    n = B * accumulate
    assert model.queue_ptr.item() == n
    torch.testing.assert_close(model.queue[:n], torch.cat(expected_keys), rtol=0, atol=1e-6)
    assert torch.equal(model.queue[n:], q0[n:])


def test_direct_loss_call_keeps_the_per_call_update():
    torch.manual_seed(0)
    model = MODELS.build(model_cfg('be', queue_len=7))
    model.init_weights()
    model.train()
    data = model.data_preprocessor(_batch(ViewsDataset(n=B), 0), training=True)
    model.loss(data['inputs'])
    assert model.queue_ptr.item() == B and not model._pending_keys


def test_switches_build_sync_bn_and_reject_both():
    from mm_ext.core.video import SyncBatchNorm
    model = MODELS.build(model_cfg('dsm', sync_bn=True))
    assert any(isinstance(m, SyncBatchNorm) for m in model.backbone.modules())
    assert any(isinstance(m, SyncBatchNorm) for m in model.key_backbone.modules())
    with pytest.raises(ValueError, match='shuffle_bn or sync_bn'):
        MODELS.build(model_cfg('dsm', sync_bn=True, shuffle_bn=True))
    plain = MODELS.build(model_cfg('dsm', shuffle_bn=True))  # one process: keys unchanged
    plain.init_weights()
    x = torch.randn(3, 3, 4, 16, 16)
    ref = plain.key_neck(plain.key_backbone(x))
    torch.testing.assert_close(plain._encode_key(x)[1], ref)


def test_bn_c3d_registered_and_pooled_conv5_feature():
    cfg = model_cfg('tbe')
    cfg['backbone'] = dict(type='BNC3D', width_ratio=0.125)
    cfg['in_channels'] = 64
    model = MODELS.build(cfg)
    model.init_weights()
    model.eval()
    x = torch.randn(2, 3, 3, 8, 32, 32)  # (B, clips, C, T, H, W)
    feats = model(x, mode='tensor')
    per_clip = model.backbone(x.flatten(0, 1)).mean(dim=(2, 3, 4)).view(2, 3, 64)
    torch.testing.assert_close(feats, per_clip.mean(1))  # multi-clip: clip features averaged
    frozen = MODELS.build(dict(type='BNC3D', width_ratio=0.125, frozen=True)).train()
    assert not any(m.training for m in frozen.modules())
    assert not any(p.requires_grad for p in frozen.parameters())


def _official_r3d18(width=64):
    """Hara-style R3D-18 state dict in the release's layout (names and shapes by hand)."""
    sd, g = {}, torch.Generator().manual_seed(0)

    def conv(name, cout, cin, k):
        sd[name] = torch.randn((cout, cin) + k, generator=g)

    def bn(name, c):
        for leaf in ('weight', 'bias', 'running_mean', 'running_var'):
            sd[f'{name}.{leaf}'] = torch.rand(c, generator=g) + 0.5
        sd[f'{name}.num_batches_tracked'] = torch.tensor(1)

    conv('conv1.weight', width, 3, (7, 7, 7))
    bn('bn1', width)
    cin = width
    for i, c in enumerate((width, 2 * width, 4 * width, 8 * width), 1):
        for j in range(2):
            pre = f'layer{i}.{j}'
            conv(f'{pre}.conv1.weight', c, cin if j == 0 else c, (3, 3, 3))
            bn(f'{pre}.bn1', c)
            conv(f'{pre}.conv2.weight', c, c, (3, 3, 3))
            bn(f'{pre}.bn2', c)
            if j == 0 and (i > 1):
                conv(f'{pre}.downsample.0.weight', c, cin, (1, 1, 1))
                bn(f'{pre}.downsample.1', c)
        cin = c
    sd['id_head.2.weight'] = torch.randn(128, 8 * width, generator=g)
    sd['id_head.2.bias'] = torch.randn(128, generator=g)
    return {f'module.base_model.{k}': v for k, v in sd.items()}


def test_converted_r3d_loads_into_the_r3d18_config(repo_root, tmp_path):
    import importlib.util
    from mmengine.config import Config
    src = tmp_path / 'official.pth.tar'
    torch.save({'model': _official_r3d18(16), 'epoch': 3}, src)
    spec = importlib.util.spec_from_file_location(
        'convert_tool', repo_root / 'tools' / 'convert_dsm_be_checkpoint.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main([str(src), str(tmp_path / 'out.pth'), '--arch', 'r3d']) == 0
    cfg = Config.fromfile(str(repo_root / 'configs/mmaction/dsm/'
                              'dsm_r3d-18_1xb4-16x4-200e_ucf101-split1.py'))
    cfg.model.backbone.base_channels = 16
    cfg.model.in_channels = 128
    model = MODELS.build(cfg.model)
    ckpt = torch.load(tmp_path / 'out.pth', weights_only=True)
    assert ckpt['meta']['arch'] == 'r3d'
    res = model.load_state_dict(ckpt['state_dict'], strict=False)
    # every converted key fits; only the memory queue starts fresh (the release's NCE memory
    # is not converted)
    assert not res.unexpected_keys and set(res.missing_keys) == {'queue', 'queue_ptr'}
    off = torch.load(src, weights_only=True)['model']
    pairs = {'conv1.weight': 'backbone.conv1.conv.weight',
             'layer2.0.downsample.1.running_var': 'backbone.layer2.0.downsample.bn.running_var',
             'layer4.1.conv2.weight': 'key_backbone.layer4.1.conv2.conv.weight',
             'id_head.2.weight': 'neck.fc.weight'}
    sd = model.state_dict()
    for old, new in pairs.items():
        assert torch.equal(sd[new], off[f'module.base_model.{old}']), old


def test_knn_in_the_retrieval_metric_hand_computed():
    metric = METRICS.build(dict(type='VideoRetrievalMetric', num_queries=1, topk=(1,), knn=(1, 3),
                                knn_temperature=1.0))
    feats = [[1., 0.1], [1., 0.], [0.6, 0.8], [0.8, 0.6]]  # query, then gallery
    labels = [1, 0, 1, 1]
    metric.process(None, [dict(pred_feature=torch.tensor(f), gt_label=torch.tensor([lb]))
                          for f, lb in zip(feats, labels)])
    res = metric.compute_metrics(metric.results)
    # nearest gallery item is label 0 (miss at 1); with 3 neighbours the two label-1 votes win:
    # exp(.85) + exp(.66) > exp(.995) (cosines to the query)
    assert res == {'R@1': 0.0, 'kNN@1': 0.0, 'kNN@3': 100.0}


def test_double_normalization_config_matches_the_helper(repo_root):
    from mmengine.config import Config
    from mm_ext.core.video import double_normalization_mean_std
    cfg = Config.fromfile(str(repo_root / 'configs/mmaction/tbe/'
                              'be_bninception-i3d_8xb8-16x4-50e_kinetics400-doublenorm.py'))
    mean, std = double_normalization_mean_std()
    assert cfg.model.data_preprocessor.mean == pytest.approx(list(mean))
    assert cfg.model.data_preprocessor.std == pytest.approx(list(std))
    assert cfg.model.mode == 'be' and cfg.model.queue_len == 65536
