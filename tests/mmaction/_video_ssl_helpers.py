"""Shared tiny settings of the video-SSL adapter tests (not a test module)."""
import torch

TINY_BACKBONE = dict(type='ResNet3d', depth=18, pretrained=None, pretrained2d=False,
                     base_channels=4, stage_blocks=(1, 1, 1, 1), conv1_kernel=(3, 7, 7),
                     with_pool1=False, inflate=(1, 1, 1, 1), spatial_strides=(1, 2, 2, 2),
                     temporal_strides=(1, 1, 1, 1), zero_init_residual=False)
TINY_CHANNELS = 32  # 4 * 8


def model_cfg(mode='dsm', queue_len=10, **kw):
    return dict(type='VideoContrastive', backbone=TINY_BACKBONE, in_channels=TINY_CHANNELS,
                mode=mode, queue_len=queue_len, feat_dim=16, **kw)


class ViewsDataset(torch.utils.data.Dataset):
    """Random three-view clips (3, 3, T, H, W) in [0, 255] with an ActionDataSample."""

    def __init__(self, n=8, t=4, size=16, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.rand(n, 3, 3, t, size, size, generator=g) * 255
        self.labels = torch.arange(n) % 2

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        from mmaction.structures import ActionDataSample
        ds = ActionDataSample()
        ds.set_gt_label(self.labels[i:i + 1])
        return dict(inputs=self.x[i], data_samples=ds)
