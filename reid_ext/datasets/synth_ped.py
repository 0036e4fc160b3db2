"""torchreid dataset classes for the generated ``synth-ped`` set (Market-1501 layout)."""
import importlib
import os.path as osp

__all__ = ['SynthPed', 'SynthPedStyle1']

_market = importlib.import_module('torchreid.reid.data.datasets.image.market1501')


class SynthPed(_market.Market1501):
    """``data/synth-ped`` read exactly as Market-1501 (same folders, naming and camids).

    ``root`` is the folder *holding* ``synth-ped`` (e.g. ``data``), as for torchreid's own
    datasets, or the dataset folder itself (any folder containing ``market1501/``). The
    viewpoint labels are at :attr:`viewpoint_file`.
    """
    folder = 'synth-ped'
    make_cmd = 'python tools/make_data.py synth-ped'

    @classmethod
    def default_viewpoint_file(cls, root: str) -> str:
        """The viewpoint file the generator wrote for ``root`` (same rules as ``__init__``)."""
        root = osp.abspath(osp.expanduser(root))
        if osp.isdir(osp.join(root, 'market1501')):
            return osp.join(root, 'market1501', 'viewpoint_labels.pkl')
        return osp.join(root, cls.folder, 'market1501', 'viewpoint_labels.pkl')

    def __init__(self, root='', **kwargs):
        root = osp.abspath(osp.expanduser(root))
        if osp.isdir(osp.join(root, 'market1501')):  # root is the dataset folder itself
            root, self.dataset_dir = osp.dirname(root), osp.join(osp.basename(root), 'market1501')
        else:
            self.dataset_dir = osp.join(self.folder, 'market1501')
        top = osp.join(root, self.dataset_dir)
        if not osp.isdir(top):
            raise FileNotFoundError(f'{top} not found: generate it with `{self.make_cmd}` (root '
                                    f'must be the folder holding {self.folder}/, got {root!r})')
        self.viewpoint_file = osp.join(top, 'viewpoint_labels.pkl')
        super().__init__(root=root, **kwargs)


class SynthPedStyle1(SynthPed):
    """The second domain (``style=1``), generated into ``data/synth-ped-style1``."""
    folder = 'synth-ped-style1'
    make_cmd = 'python tools/make_data.py synth-ped -o style=1 -o suffix=style1 --seed 1'
