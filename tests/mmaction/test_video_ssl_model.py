"""VideoContrastive in mmaction2: build, one Runner iteration per mode, resume."""
import copy

import pytest
import torch

pytest.importorskip('mmaction')

import mm_ext.mmaction  # noqa: F401,E402  (registers the components)
from mmaction.registry import MODELS  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from _video_ssl_helpers import ViewsDataset, model_cfg  # noqa: E402


def _loader(seed=0):
    return torch.utils.data.DataLoader(ViewsDataset(seed=seed), batch_size=3, shuffle=False,
                                       drop_last=True, collate_fn=pseudo_collate)


def _runner(work_dir, mode, max_iters, resume=False, **kw):
    return Runner(
        model=model_cfg(mode, **kw),
        work_dir=str(work_dir),
        train_dataloader=_loader(),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        default_scope='mmaction',
        resume=resume,
        randomness=dict(seed=0),
        env_cfg=dict(dist_cfg=dict(backend='gloo')))


@pytest.mark.parametrize('mode', ['moco', 'dsm', 'dsm_triplet', 'be', 'tbe'])
def test_runner_one_iteration_each_mode(tmp_path, mode):
    runner = _runner(tmp_path, mode, max_iters=1)
    model = runner.model
    q0 = model.queue.clone()
    w0 = copy.deepcopy(model.backbone.state_dict())
    runner.train()
    changed = any(not torch.equal(w0[k], v) for k, v in model.backbone.state_dict().items()
                  if v.dtype.is_floating_point)
    assert changed  # the optimiser stepped
    scalars = runner.message_hub.log_scalars
    if mode == 'dsm_triplet':
        assert torch.equal(model.queue, q0) and 'train/loss_triplet' in scalars
    else:
        assert model.queue_ptr.item() == 3
        assert not torch.equal(model.queue[:3], q0[:3]) and torch.equal(model.queue[3:], q0[3:])
        assert torch.allclose(model.queue[:3].norm(dim=1), torch.ones(3), atol=1e-5)
        assert 'train/loss_nce' in scalars
    assert ('train/loss_tcr' in scalars) == (mode == 'tbe')


def test_resume_restores_queue_pointer_and_key_encoder(tmp_path):
    # K = 10, batch 3: after 2 iterations ptr = 6; a third iteration wraps to 9
    ra = _runner(tmp_path, 'dsm', max_iters=2)
    ra.train()
    a = ra.model
    assert a.queue_ptr.item() == 6
    assert (tmp_path / 'iter_2.pth').exists()
    rb = _runner(tmp_path, 'dsm', max_iters=2, resume=True)
    rb.train()  # loads iter_2.pth, nothing left to train
    b = rb.model
    assert rb.iter == 2
    assert torch.equal(a.queue, b.queue) and torch.equal(a.queue_ptr, b.queue_ptr)
    for (ka, va), (kb, vb) in zip(a.key_backbone.state_dict().items(),
                                  b.key_backbone.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka  # params and the key's own BN stats
    for va, vb in zip(a.key_neck.state_dict().values(), b.key_neck.state_dict().values()):
        assert torch.equal(va, vb)
    # the key encoder is a real EMA (not a copy of the query) and keeps its own BN statistics
    qa = dict(a.backbone.named_parameters())
    assert any(not torch.equal(p, qa[n]) for n, p in a.key_backbone.named_parameters())
    # continuing after the resume advances the pointer from the restored value, with wrap-around
    rc = _runner(tmp_path, 'dsm', max_iters=3, resume=True)
    rc.train()
    assert rc.model.queue_ptr.item() == 9


def test_build_errors_name_the_field():
    with pytest.raises(ValueError, match='tps_jiter'):
        MODELS.build(model_cfg('dsm', contrastive_cfg=dict(tps_jiter=0.1)))
    with pytest.raises(ValueError, match='mode'):
        MODELS.build(model_cfg('simclr'))


def test_predict_and_tensor_modes():
    model = MODELS.build(model_cfg('tbe'))
    model.init_weights()
    # init_weights re-syncs the key encoder with the query encoder
    for (n, p), (_, pk) in zip(model.backbone.named_parameters(),
                               model.key_backbone.named_parameters()):
        assert torch.equal(p, pk), n
    model.eval()
    x = torch.randn(2, 2, 3, 4, 16, 16)  # (B, clips, C, T, H, W)
    feats = model(x, mode='tensor')
    assert feats.shape == (2, 32)
    from mmaction.structures import ActionDataSample
    out = model(x, [ActionDataSample(), ActionDataSample()], mode='predict')
    assert torch.allclose(out[0].pred_feature, feats[0])


def test_bn_inception_i3d_registered_and_frozen():
    net = MODELS.build(dict(type='BNInceptionI3D', width_ratio=0.125, frozen=True))
    net.train()
    assert not any(p.requires_grad for p in net.parameters())
    assert not any(m.training for m in net.modules())
