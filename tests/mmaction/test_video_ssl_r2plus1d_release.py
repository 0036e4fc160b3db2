"""R(2+1)D in the release's layout: an official-layout network built here by hand, its state dict
converted with ``--arch r2p1d``, loaded strictly into ``ResNet2Plus1dRelease``: same features."""
import math

import pytest
import torch
import torch.nn as nn

import mm_ext.mmaction  # noqa: F401  (registers the backbone)
from mm_ext.core.video import ProjectionHead
from mm_ext.core.video.convert import convert_official_state_dict


def _mid(cin, cout, k):
    t, h, w = k
    return math.floor(t * h * w * cin * cout / (h * w * cin + t * cout))


class _OfficialSTConv(nn.Module):
    """The release's factorised conv: spatial_conv -> bn -> relu -> temporal_conv (no bias)."""

    def __init__(self, cin, cout, k, stride=(1, 1, 1), pad=(0, 0, 0)):
        super().__init__()
        m = _mid(cin, cout, k)
        self.spatial_conv = nn.Conv3d(cin, m, (1, k[1], k[2]), (1, stride[1], stride[2]),
                                      (0, pad[1], pad[2]), bias=False)
        self.bn = nn.BatchNorm3d(m)
        self.temporal_conv = nn.Conv3d(m, cout, (k[0], 1, 1), (stride[0], 1, 1), (pad[0], 0, 0),
                                       bias=False)

    def forward(self, x):
        return self.temporal_conv(torch.relu(self.bn(self.spatial_conv(x))))


class _OfficialBlock(nn.Module):
    def __init__(self, cin, cout, down):
        super().__init__()
        s = (2, 2, 2) if down else (1, 1, 1)
        self.down = down
        if down:
            self.downsampleconv = _OfficialSTConv(cin, cout, (1, 1, 1), stride=s)
            self.downsamplebn = nn.BatchNorm3d(cout)
        self.conv1 = _OfficialSTConv(cin, cout, (3, 3, 3), s, (1, 1, 1))
        self.bn1 = nn.BatchNorm3d(cout)
        self.conv2 = _OfficialSTConv(cout, cout, (3, 3, 3), pad=(1, 1, 1))
        self.bn2 = nn.BatchNorm3d(cout)

    def forward(self, x):
        r = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        if self.down:
            x = self.downsamplebn(self.downsampleconv(x))
        return torch.relu(x + r)


class _OfficialLayer(nn.Module):
    def __init__(self, cin, cout, n, down):
        super().__init__()
        self.block1 = _OfficialBlock(cin, cout, down)
        self.blocks = nn.ModuleList([_OfficialBlock(cout, cout, False) for _ in range(n - 1)])

    def forward(self, x):
        x = self.block1(x)
        for b in self.blocks:
            x = b(x)
        return x


class _OfficialR2P1D(nn.Module):
    """The release's R2Plus1DNet(layer_sizes) with the contrastive id_head, at width ``c``."""

    def __init__(self, sizes=(1, 1, 1, 1), c=8):
        super().__init__()
        self.conv1 = _OfficialSTConv(3, c, (3, 7, 7), (1, 2, 2), (1, 3, 3))
        self.bn1 = nn.BatchNorm3d(c)
        self.conv2 = _OfficialLayer(c, c, sizes[0], False)
        self.conv3 = _OfficialLayer(c, 2 * c, sizes[1], True)
        self.conv4 = _OfficialLayer(2 * c, 4 * c, sizes[2], True)
        self.conv5 = _OfficialLayer(4 * c, 8 * c, sizes[3], True)
        self.id_head = nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(8 * c, 128))

    def features(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        return self.conv5(self.conv4(self.conv3(self.conv2(x))))

    def forward(self, x):
        return nn.functional.normalize(self.id_head(self.features(x)), dim=1)


def _randomise_bn(net, g):
    for m in net.modules():
        if isinstance(m, nn.BatchNorm3d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def _build(**kw):
    from mmaction.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmaction')  # as the configs' default_scope (Conv2plus1d is found there)
    return MODELS.build(dict(type='ResNet2Plus1dRelease', **kw))


@pytest.mark.parametrize('sizes,depth', [((1, 1, 1, 1), 18), ((2, 1, 2, 1), 18)])
def test_converted_official_r2p1d_gives_the_release_features(sizes, depth):
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    ref = _OfficialR2P1D(sizes, c=8)
    _randomise_bn(ref, g)
    sd = {f'module.base_model.{k}': v for k, v in ref.state_dict().items()}
    out = convert_official_state_dict(sd, 'r2p1d')
    net = _build(depth=depth, stage_blocks=sizes, base_channels=8)
    bb = {k[len('backbone.'):]: v for k, v in out.items() if k.startswith('backbone.')}
    net.load_state_dict(bb, strict=True)  # every key and shape of the release layout fits
    neck = ProjectionHead(64, 128)
    neck.load_state_dict({k[len('neck.'):]: v for k, v in out.items() if k.startswith('neck.')})
    ref.eval()
    net.eval()
    x = torch.randn(2, 3, 8, 32, 32, generator=g)
    with torch.no_grad():
        f_ref, f = ref.features(x), net(x)
        assert f.shape == f_ref.shape == (2, 64, 1, 2, 2)  # no stem pool: 32 -> 16 -> 8 -> 4 -> 2
        torch.testing.assert_close(f, f_ref)
        torch.testing.assert_close(neck(f), ref(x))
    # the key encoder is written as a copy of the query encoder
    assert torch.equal(out['key_backbone.layer2.0.downsample.conv.conv_s.weight'],
                       out['backbone.layer2.0.downsample.conv.conv_s.weight'])


def test_release_widths_differ_from_mmactions_only_in_the_shortcut():
    from mmaction.registry import MODELS
    rel = _build()  # also sets the default scope
    mm = MODELS.build(dict(type='ResNet2Plus1d', depth=18, stage_blocks=(1, 1, 1, 1),
                           pretrained=None, pretrained2d=False, conv_cfg=dict(type='Conv2plus1d'),
                           norm_cfg=dict(type='BN3d'), conv1_kernel=(3, 7, 7), conv1_stride_t=1,
                           pool1_stride_t=1, inflate=(1, 1, 1, 1), spatial_strides=(1, 2, 2, 2),
                           temporal_strides=(1, 2, 2, 2)))
    s_rel, s_mm = rel.state_dict(), mm.state_dict()
    assert set(s_rel) == set(s_mm)
    differ = sorted(k for k in s_rel if s_rel[k].shape != s_mm[k].shape)
    assert differ and all('.downsample.conv.' in k for k in differ)
    # the paper's M = floor(t d^2 Nin Nout / (d^2 Nin + t Nout)) with t = d = 1: 64*128/192 etc.
    widths = [rel.state_dict()[f'layer{i}.0.downsample.conv.conv_s.weight'].shape[0]
              for i in (2, 3, 4)]
    assert widths == [42, 85, 170]
    assert [s_mm[f'layer{i}.0.downsample.conv.conv_s.weight'].shape[0] for i in (2, 3, 4)] \
        == [54, 109, 219]
    assert s_rel['conv1.conv.conv_s.weight'].shape[0] == 83  # 3*49*3*64 / (49*3 + 3*64)
    # stem pool: off as in the release, on when asked (the parent ignores with_pool1)
    x = torch.randn(1, 3, 8, 64, 64)
    rel.eval()
    assert rel(x).shape[-1] == 4
    pooled = _build(with_pool1=True)
    pooled.eval()  # (ResNet3d.train returns None)
    assert pooled(x).shape[-1] == 2


def test_frozen_stages_stay_frozen_after_the_rebuild():
    net = _build(frozen_stages=2)
    net.train()
    assert not any(p.requires_grad for p in net.layer2.parameters())
    assert all(p.requires_grad for p in net.layer3.parameters())


def test_official_checkpoint_with_queue_loads_strictly_into_the_dsm_r2plus1d_config():
    from pathlib import Path

    from mmaction.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mm_ext.core.video.convert import convert_official_queue
    root = Path(__file__).resolve().parents[2]
    cfg = Config.fromfile(str(root / 'configs/mmaction/dsm/'
                              'dsm_r2plus1d-10_1xb4-16x4-200e_ucf101-split1.py'))
    assert cfg.model.backbone.type == 'ResNet2Plus1dRelease'
    cfg.model.backbone.base_channels = 8  # a narrow copy of the release's network
    cfg.model.in_channels = 64
    cfg.model.queue_len = 13
    with DefaultScope.overwrite_default_scope('mmaction'):
        model = MODELS.build(cfg.model)
    torch.manual_seed(0)
    ref = _OfficialR2P1D((1, 1, 1, 1), c=8)
    sd = {f'module.base_model.{k}': v for k, v in ref.state_dict().items()}
    memory = torch.nn.functional.normalize(torch.randn(13, 128), dim=1)
    out = convert_official_state_dict(sd, 'r2p1d')
    out.update(convert_official_queue({'params': torch.tensor([-1.0]), 'memory': memory}))
    missing, unexpected = model.load_state_dict(out, strict=False)
    assert not unexpected
    assert all(k.startswith('data_preprocessor.') for k in missing), missing
    assert torch.equal(model.queue, memory) and model.queue_ptr.item() == 0
    ref.eval()
    model.eval()
    x = torch.randn(1, 3, 8, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.neck(model.backbone(x)), ref(x))
        torch.testing.assert_close(model.key_neck(model.key_backbone(x)), ref(x))
