"""One contrastive step per mode with a tiny torch encoder; I3D shapes."""
import pytest
import torch
import torch.nn as nn

from mm_ext.core.video import (MODES, BNInceptionI3D, ContrastiveConfig, ProjectionHead,
                               infonce_with_extra_negative, video_contrastive_loss)


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 8, 3, padding=1)
        self.head = ProjectionHead(8, 16)

    def forward(self, x):
        m = torch.relu(self.conv(x))
        return m, self.head(m)


@pytest.mark.parametrize('mode', MODES)
def test_video_contrastive_loss_every_mode(mode):
    torch.manual_seed(0)
    enc_q, enc_k = _Tiny(), _Tiny()
    enc_k.load_state_dict(enc_q.state_dict())
    views = torch.randn(3, 3, 3, 4, 8, 8)
    queue = torch.randn(7, 16)
    losses, keys = video_contrastive_loss(views, enc_q, enc_k, queue, ContrastiveConfig(mode=mode))
    total = sum(v for n, v in losses.items() if 'loss' in n)
    total.backward()
    assert enc_q.conv.weight.grad.abs().sum() > 0
    if mode == 'dsm_triplet':
        assert keys is None and set(losses) == {'loss_triplet'}
    else:
        assert keys.shape == (3, 16) and not keys.requires_grad
        assert torch.allclose(keys.norm(dim=1), torch.ones(3))
        assert enc_k.conv.weight.grad is None
    assert ('loss_tcr' in losses) == (mode == 'tbe')


def test_moco_mode_equals_manual_infonce():
    """moco: q = f_q(anchor), k = f_k(positive), extra = f_q(negative of the next sample)."""
    torch.manual_seed(0)
    enc = _Tiny()
    views = torch.randn(3, 3, 3, 4, 8, 8)
    queue = torch.randn(5, 16)
    losses, keys = video_contrastive_loss(views, enc, enc, queue,
                                          ContrastiveConfig(mode='moco', temperature=0.2))
    q = enc(views[:, 0])[1]
    k = enc(views[:, 1])[1]
    n = torch.roll(enc(views[:, 2])[1], 1, 0)
    ref, _ = infonce_with_extra_negative(q, k, queue, n, 0.2)
    assert torch.allclose(losses['loss_nce'], ref, atol=1e-6)
    assert torch.allclose(keys, k, atol=1e-6)


def test_bad_views_shape():
    enc = _Tiny()
    with pytest.raises(ValueError, match='3 views'):
        video_contrastive_loss(torch.randn(2, 2, 3, 4, 8, 8), enc, enc, torch.randn(4, 16),
                               ContrastiveConfig())
    with pytest.raises(ValueError, match='mode'):
        ContrastiveConfig(mode='simclr')


def test_bn_inception_i3d_shapes():
    net = BNInceptionI3D()
    assert net.out_channels == 1024
    small = BNInceptionI3D(width_ratio=0.125)
    small.init_weights()
    out = small(torch.randn(1, 3, 8, 64, 64))
    assert out.shape == (1, 128, 1, 2, 2)
