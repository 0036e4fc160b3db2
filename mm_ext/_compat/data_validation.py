"""Named errors for malformed data in the hosts' own dataset readers.

Each host reader is wrapped so that the file is checked by :mod:`mm_ext.core.datacheck` first
(``file:line``, the field, what was expected) and then read by the host's unchanged code, so
valid data gives exactly what it gave before:

* mmdet ``CrowdHumanDataset.load_data_list`` and ``CrowdHumanMetric``: ``.odgt`` lines (JSON,
  ``ID``, ``gtboxes[i].tag/fbox/hbox/vbox``), the image each record names, a stale id_hw cache;
* mmpretrain ``CIFAR10`` (and subclasses: CIFAR100, ``GeneratedCIFAR10``): the batch files
  of the split and the meta file (keys, ``data`` shape/dtype, labels);
* mmaction2 ``VideoDataset``: list lines (fields, integer labels), missing or empty videos at
  load time, and a video that cannot be decoded when it is read (list file, line, video);
* torchreid ``Market1501.process_dir`` (and subclasses such as ``SynthPed``): image names that
  do not parse as ``<pid>_c<cam>s<seq>_<frame>_<box>.jpg``.

Patches are installed lazily (when the host module is imported) and are idempotent.
"""
import functools
import os.path as osp

from .post_import import when_imported

__all__ = ['apply']


def _once(cls, name, make):
    original = getattr(cls, name)
    if getattr(original, '__mm_ext_validated__', False):
        return
    wrapped = functools.wraps(original)(make(original))
    wrapped.__mm_ext_validated__ = True
    setattr(cls, name, wrapped)


def _is_local(path) -> bool:
    return isinstance(path, str) and '://' not in path


# ---------------------------------------------------------------- mmdet CrowdHuman
def _patch_crowdhuman_dataset(module) -> None:
    from mm_ext.core.datacheck import DataFormatError, read_odgt

    def make(original):
        def load_data_list(self):
            if _is_local(self.ann_file):
                img_dir = self.data_prefix.get('img')
                recs = read_odgt(self.ann_file, img_dir=img_dir if _is_local(img_dir) else None,
                                 box_keys=('fbox', 'hbox', 'vbox'))
                if getattr(self, 'id_hw_exist', False):
                    cache = getattr(self, 'id_hw_path', 'the id_hw file')
                    missing = [r['ID'] for r in recs if r['ID'] not in self.id_hw]
                    if missing:
                        raise DataFormatError(
                            cache, f'no image size for {len(missing)} record(s) of {self.ann_file}, e.g. '
                            f'{missing[0]!r}', field='ID',
                            hint='the cache was written for other annotations: delete it (mmdet rebuilds it)')
            return original(self)
        return load_data_list

    _once(module.CrowdHumanDataset, 'load_data_list', make)


def _patch_crowdhuman_metric(module) -> None:
    from mm_ext.core.datacheck import read_odgt

    def make(original):
        def load_eval_samples(self, *args, **kwargs):
            if _is_local(getattr(self, 'ann_file', None)):
                read_odgt(self.ann_file, box_keys=('fbox', ))
            return original(self, *args, **kwargs)
        return load_eval_samples

    if hasattr(module.CrowdHumanMetric, 'load_eval_samples'):
        _once(module.CrowdHumanMetric, 'load_eval_samples', make)


# ---------------------------------------------------------------- mmpretrain CIFAR
def _patch_cifar(module) -> None:
    from mm_ext.core.datacheck import check_cifar_folder

    def make(original):
        def load_data_list(self):
            root = self.data_prefix.get('root') if isinstance(getattr(self, 'data_prefix', None), dict) else None
            folder = osp.join(root, self.base_folder) if root and _is_local(root) else None
            if folder and osp.isdir(folder):  # absent: the host's own message (download hint / GeneratedCIFAR10's)
                files = self.train_list if getattr(self, 'split', 'train') == 'train' else self.test_list
                check_cifar_folder(folder, [f for f, _ in files], self.meta['filename'], self.meta['key'])
            return original(self)
        return load_data_list

    _once(module.CIFAR10, 'load_data_list', make)


# ---------------------------------------------------------------- mmaction2 VideoDataset
_DECODERS = ('decord', 'av', 'cv2')


def _is_decode_error(exc) -> bool:
    """Raised by a video decoder (its type, or the innermost frames are decoder code)."""
    if type(exc).__module__.split('.')[0] in _DECODERS or 'DECORDError' in type(exc).__name__:
        return True
    tb = exc.__traceback__
    while tb is not None:
        if str(tb.tb_frame.f_globals.get('__name__', '')).split('.')[0] in _DECODERS:
            return True
        tb = tb.tb_next
    return False


def _patch_video_dataset(module) -> None:
    from mm_ext.core.datacheck import DataFormatError, read_video_list

    def make_load(original):
        def load_data_list(self):
            if _is_local(self.ann_file):
                prefix = self.data_prefix.get('video')
                rows = read_video_list(self.ann_file, prefix if prefix else None, delimiter=self.delimiter,
                                       multi_class=self.multi_class,
                                       num_classes=self.num_classes if self.multi_class else None,
                                       check_files=_is_local(prefix) if prefix else True)
                self._mm_ext_list_lines = {video: n for n, video, _ in rows}
            return original(self)
        return load_data_list

    def make_prepare(original):
        def prepare_data(self, idx):
            try:
                return original(self, idx)
            except DataFormatError:
                raise
            except Exception as exc:
                if not _is_decode_error(exc):
                    raise
                video = self.get_data_info(idx).get('filename', '?')
                line = getattr(self, '_mm_ext_list_lines', {}).get(video)
                raise DataFormatError(
                    self.ann_file, f'video {video} cannot be decoded ({type(exc).__name__}: '
                    f'{str(exc).strip().splitlines()[0] if str(exc).strip() else ""})', line=line, field='video',
                    hint='re-encode or remove it from the list') from exc
        return prepare_data

    _once(module.VideoDataset, 'load_data_list', make_load)
    _once(module.VideoDataset, 'prepare_data', make_prepare)


# ---------------------------------------------------------------- torchreid Market-1501
def _patch_market1501(module) -> None:
    from mm_ext.core.datacheck import check_market_dir

    def make(original):
        def process_dir(self, dir_path, *args, **kwargs):
            if osp.isdir(dir_path):
                check_market_dir(dir_path)
            return original(self, dir_path, *args, **kwargs)
        return process_dir

    _once(module.Market1501, 'process_dir', make)


def apply() -> None:
    when_imported('mmdet.datasets.crowdhuman', _patch_crowdhuman_dataset)
    when_imported('mmdet.evaluation.metrics.crowdhuman_metric', _patch_crowdhuman_metric)
    when_imported('mmpretrain.datasets.cifar', _patch_cifar)
    when_imported('mmaction.datasets.video_dataset', _patch_video_dataset)
    when_imported('torchreid.reid.data.datasets.image.market1501', _patch_market1501)
