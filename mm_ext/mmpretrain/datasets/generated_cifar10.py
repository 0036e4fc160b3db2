"""mmpretrain's ``CIFAR10`` reader for CIFAR-format data that is not the original CIFAR-10."""
from mmpretrain.datasets import CIFAR10
from mmpretrain.registry import DATASETS

from mm_ext._registry import register


@register(DATASETS)
class GeneratedCIFAR10(CIFAR10):
    """Stock ``CIFAR10`` with only the md5 checks relaxed.

    mmpretrain's ``CIFAR10`` checks each batch file against the md5 sums of
    the real CIFAR-10 release, so any other data written in the same format
    (``cifar-10-batches-py/data_batch_1..5``, ``test_batch``,
    ``batches.meta``) is rejected. This class reads the same files the same
    way, checks only that they exist, takes the class names from
    ``batches.meta`` and never downloads.

    Args:
        data_root (str): folder holding ``cifar-10-batches-py/``
            (e.g. ``data/digits-cifar`` from ``tools/make_data.py digits-cifar``).
        **kwargs: as for :class:`mmpretrain.datasets.CIFAR10`.
    """

    METAINFO = {}
    train_list = [[f'data_batch_{i}', None] for i in range(1, 6)]
    test_list = [['test_batch', None]]
    meta = {'filename': 'batches.meta', 'key': 'label_names', 'md5': None}

    def __init__(self, *args, download: bool = False, **kwargs):
        if download:
            raise ValueError('GeneratedCIFAR10 never downloads; use tools/make_data.py to write the data '
                             'or the stock CIFAR10 class for the real CIFAR-10')
        super().__init__(*args, download=False, **kwargs)

    def load_data_list(self):
        if not self._check_integrity():
            import os.path as osp
            root = self.data_prefix['root']
            missing = [f for f, _ in self.train_list + self.test_list + [[self.meta['filename'], None]]
                       if not osp.exists(osp.join(root, self.base_folder, f))]
            raise FileNotFoundError(
                f'{type(self).__name__}: {osp.join(root, self.base_folder)} lacks {missing}. '
                'Write the embedded set with `python tools/make_data.py digits-cifar` '
                '(data_root=data/digits-cifar) or point data_root at a folder containing '
                'cifar-10-batches-py/.')
        return super().load_data_list()
