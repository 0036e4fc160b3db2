"""torchreid datasets for the PI-ReID layout (PI-PRW, PI-CUHK-SYSU, generated ``synth-pi``).

Layout and json formats: ``reid_ext/datagen/synth_pi.py`` (spec ``reid.md`` §2.1). Two views:

* :class:`PIReIDSingle` (stage 1, strong baseline): train = the single-person crops of
  ``gt_training_box.json``;
* :class:`PIReID` (stage 2): train = triples ``((G, q1, q2), p1, camid, dsetid, p2)`` built from
  the multi-person training crops: p1, p2 = the first two persons of G, q1/q2 single-person
  images of them (``prw``: from a camera other than G's when there is one; ``cuhk``: random).
  Each crop gives two triples (roles swapped). :meth:`PIReID.regenerate` re-draws q1/q2 (call
  it every epoch; the engine does).

Query/gallery are the same in both: query = (image, pid, camid) (``prw``: de-duplicated to one
query per pid, restricted to ``valid_q_pid.json``); gallery = (crop, first pid, camid), the
full list of pids of a crop in :attr:`gallery_pids` (path -> list) — torchreid's base class
needs hashable pids. Malformed json raises :class:`mm_ext.core.datacheck.DataFormatError`
naming the file and the field.
"""
import json
import os.path as osp

import numpy as np
import torchreid

from mm_ext.core.datacheck import DataFormatError, MissingDataFileError

__all__ = ['read_pi_layout', 'PIReID', 'PIReIDSingle', 'SynthPI', 'SynthPISingle', 'PIPRW', 'PIPRWSingle',
           'PICUHKSYSU', 'PICUHKSYSUSingle']

_ImageDataset = torchreid.data.ImageDataset
_read_image = torchreid.utils.read_image


def _load(path):
    if not osp.isfile(path):
        raise MissingDataFileError(path, path, problem='missing PI-ReID annotation file',
                                   hint='generate synth-pi with `python tools/make_data.py synth-pi`')
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise DataFormatError(path, f'not valid JSON ({e.msg})', line=e.lineno) from None


def _int(path, key, v):
    if isinstance(v, bool) or not isinstance(v, int):
        raise DataFormatError(path, f'expected an integer id, got {v!r}', field=str(key))
    return v


def _mapping(path, obj, value, image_dir=None):
    """Validate a {file: value} mapping; ``value`` 'int' or 'pids' (non-empty int list)."""
    if not isinstance(obj, dict):
        raise DataFormatError(path, f'expected a JSON object {{image file: ...}}, got {type(obj).__name__}')
    out = {}
    for k, v in obj.items():
        if value == 'pids':
            if not isinstance(v, list) or not v:
                raise DataFormatError(path, f'expected a non-empty list of pids, got {v!r}', field=k)
            out[k] = [_int(path, k, p) for p in v]
        else:
            out[k] = _int(path, k, v)
        if image_dir is not None and not osp.isfile(osp.join(image_dir, k)):
            raise MissingDataFileError(path, osp.join(image_dir, k), field=k)
    return out


def read_pi_layout(root: str, check_images: bool = True) -> dict:
    """Read and validate every annotation file of a PI-ReID dataset root (``.../prw``)."""
    j = lambda *p: osp.join(root, *p)  # noqa: E731
    im = (lambda *p: j(*p)) if check_images else (lambda *p: None)
    out = dict(root=root)
    out['train'] = _mapping(j('gt_training_box.json'), _load(j('gt_training_box.json')), 'int',
                            im('train_gt', 'image'))
    for split in ('hard_gallery_train', 'hard_gallery_test'):
        gp, cp = j(split, 'gallery.json'), j(split, 'camera_id.json')
        g = _mapping(gp, _load(gp), 'pids', im(split, 'image'))
        c = _mapping(cp, _load(cp), 'int')
        for k in g:
            if k not in c:
                raise DataFormatError(cp, 'no camera id for this gallery crop', field=k)
        out[split] = (g, c)
    qp, cp = j('query', 'query.json'), j('query', 'camera_id.json')
    q = _mapping(qp, _load(qp), 'int', im('query', 'query_image'))
    c = _mapping(cp, _load(cp), 'int')
    for k in q:
        if k not in c:
            raise DataFormatError(cp, 'no camera id for this query', field=k)
    out['query'] = (q, c)
    vp = j('valid_q_pid.json')
    valid = _load(vp)
    if not isinstance(valid, list):
        raise DataFormatError(vp, f'expected a list of pids, got {type(valid).__name__}')
    out['valid_q_pid'] = [_int(vp, i, v) for i, v in enumerate(valid)]
    return out


class _PIBase(_ImageDataset):
    """Shared parsing. ``root`` holds ``<folder>/<flavor>/`` or is the flavor folder itself."""
    folder = None       # dataset folder under root (subclasses)
    flavor = 'prw'      # 'prw' (camera rules + query de-duplication) or 'cuhk'
    _cache = {}

    def _resolve(self, root):
        root = osp.abspath(osp.expanduser(root))
        for cand in (root, osp.join(root, self.flavor),
                     osp.join(root, self.folder or '', self.flavor)):
            if osp.isfile(osp.join(cand, 'gt_training_box.json')):
                return cand
        raise FileNotFoundError(f'no PI-ReID layout ({self.flavor}/gt_training_box.json) under {root!r}: '
                                f'generate it with `python tools/make_data.py synth-pi`')

    def _parse(self, root):
        d = self._resolve(root)
        # ImageDataManager builds the dataset three times: parse once per content version
        key = (d, tuple(osp.getmtime(osp.join(d, f)) if osp.exists(osp.join(d, f)) else 0.0 for f in (
            'gt_training_box.json', 'each_pid_info.json', 'valid_q_pid.json', 'query/query.json',
            'query/camera_id.json', 'hard_gallery_train/gallery.json',
            'hard_gallery_train/camera_id.json', 'hard_gallery_test/gallery.json',
            'hard_gallery_test/camera_id.json')))
        if key not in _PIBase._cache:
            _PIBase._cache[key] = read_pi_layout(d)
        lay = _PIBase._cache[key]
        self.pi_root = d
        q, qc = lay['query']
        query, seen = [], set()
        valid = set(lay['valid_q_pid'])
        for fn in sorted(q):
            pid = q[fn]
            if self.flavor == 'prw':  # one query per valid pid (release rule)
                if pid not in valid or pid in seen:
                    continue
                seen.add(pid)
                cam = qc[fn]
            else:
                cam = 1
            query.append((osp.join(d, 'query', 'query_image', fn), pid, cam))
        g, gc = lay['hard_gallery_test']
        gallery, self.gallery_pids = [], {}
        for fn in sorted(g):
            path = osp.join(d, 'hard_gallery_test', 'image', fn)
            gallery.append((path, g[fn][0], gc[fn] if self.flavor == 'prw' else 2))
            self.gallery_pids[path] = list(g[fn])
        return lay, query, gallery


class PIReIDSingle(_PIBase):
    """Stage 1: train on the single-person GT crops (plain torchreid items)."""

    def __init__(self, root='', **kwargs):
        lay, query, gallery = self._parse(root)
        d = self.pi_root
        pids = sorted(set(lay['train'].values()))
        relabel = {p: i for i, p in enumerate(pids)}
        info = _load(osp.join(d, 'each_pid_info.json'))
        cams = {}
        for p, v in info.items():
            if not isinstance(v, dict) or 'images' not in v or 'cams' not in v:
                raise DataFormatError(osp.join(d, 'each_pid_info.json'),
                                      "expected {'cams': [...], 'images': [...]}", field=p)
            cams.update(zip(v['images'], v['cams']))
        train = [(osp.join(d, 'train_gt', 'image', fn), relabel[pid], int(cams.get(fn, 1)))
                 for fn, pid in sorted(lay['train'].items())]
        super().__init__(train, query, gallery, **kwargs)


class PIReID(_PIBase):
    """Stage 2: train items are triples ((G, q1, q2), p1, camid, dsetid, p2), pids relabelled
    over the single-person training identities."""

    def __init__(self, root='', seed=0, **kwargs):
        lay, query, gallery = self._parse(root)
        d = self.pi_root
        pids = sorted(set(lay['train'].values()))
        self.relabel = {p: i for i, p in enumerate(pids)}
        info = _load(osp.join(d, 'each_pid_info.json'))
        self.pid_images = {}  # raw pid -> [(path, camid)]
        for p, v in info.items():
            if not isinstance(v, dict) or 'images' not in v or 'cams' not in v:
                raise DataFormatError(osp.join(d, 'each_pid_info.json'),
                                      "expected {'cams': [...], 'images': [...]}", field=p)
            self.pid_images[int(p)] = [(osp.join(d, 'train_gt', 'image', fn), int(c))
                                       for fn, c in zip(v['images'], v['cams'])]
        g, gc = lay['hard_gallery_train']
        self.crops = []  # (path, camid, p1, p2)
        gp = osp.join(d, 'hard_gallery_train', 'gallery.json')
        for fn in sorted(g):
            ps = g[fn]
            if len(ps) < 2:
                raise DataFormatError(gp, 'a training crop needs at least two persons', field=fn)
            if ps[0] not in self.pid_images or ps[1] not in self.pid_images:
                continue  # a person without single-person images cannot guide
            path = osp.join(d, 'hard_gallery_train', 'image', fn)
            self.crops.append((path, gc[fn], ps[0], ps[1]))
            self.crops.append((path, gc[fn], ps[1], ps[0]))
        if not self.crops:
            raise DataFormatError(gp, 'no crop with two persons having single-person images')
        self.seed = seed
        train = self._triples(0)
        super().__init__(train, query, gallery, **kwargs)
        self.num_train_pids = len(self.relabel)  # every single-person identity (stage-1 classifier)

    def _pick(self, rng, pid, cam):
        imgs = self.pid_images[pid]
        if self.flavor == 'prw':
            other = [x for x in imgs if x[1] != cam]
            imgs = other or imgs
        return imgs[int(rng.integers(len(imgs)))][0]

    def _triples(self, epoch):
        rng = np.random.default_rng([self.seed, epoch])
        return [((path, self._pick(rng, p1, cam), self._pick(rng, p2, cam)),
                 self.relabel[p1], cam, 0, self.relabel[p2]) for path, cam, p1, p2 in self.crops]

    def regenerate(self, epoch: int) -> None:
        """Re-draw the single-person images of every triple (same crops, same order)."""
        self.train[:] = self._triples(epoch)
        self.data = self.train if self.mode == 'train' else self.data

    def __getitem__(self, index):
        if self.mode != 'train':
            return super().__getitem__(index)
        paths, p1, camid, dsetid, p2 = self.data[index]
        imgs = [_read_image(p) for p in paths]
        if self.transform is not None:
            imgs = [self._transform_image(self.transform, self.k_tfm, im) for im in imgs]
        return {'img': imgs[0], 'q1': imgs[1], 'q2': imgs[2], 'pid': p1, 'pid2': p2,
                'camid': camid, 'impath': paths[0], 'dsetid': dsetid}

    def show_summary(self):
        print(f'=> {type(self).__name__}: {len(self.crops)} training triples, '
              f'{len(self.query)} queries, {len(self.gallery)} gallery crops')


class SynthPI(PIReID):
    """``data/synth-pi/prw`` (stage 2 triples)."""
    folder = 'synth-pi'


class SynthPISingle(PIReIDSingle):
    """``data/synth-pi/prw`` (stage 1 single-person crops)."""
    folder = 'synth-pi'


class PIPRW(PIReID):
    """PI-PRW as given out by the authors: ``<root>/prw/`` (or ``<root>`` itself)."""
    folder = ''
    flavor = 'prw'


class PIPRWSingle(PIReIDSingle):
    folder = ''
    flavor = 'prw'


class PICUHKSYSU(PIReID):
    """PI-CUHK-SYSU: ``<root>/cuhk/``; query camid 1, gallery camid 2, random q1/q2."""
    folder = ''
    flavor = 'cuhk'


class PICUHKSYSUSingle(PIReIDSingle):
    folder = ''
    flavor = 'cuhk'


def register():
    """Register the names with torchreid (idempotent): ``synth_pi``, ``pi_prw``,
    ``pi_cuhk_sysu`` (stage-2 triples) and their ``*_single`` stage-1 views."""
    from reid_ext._register import register_dataset
    for name, cls in (('synth_pi', SynthPI), ('synth_pi_single', SynthPISingle),
                      ('pi_prw', PIPRW), ('pi_prw_single', PIPRWSingle),
                      ('pi_cuhk_sysu', PICUHKSYSU), ('pi_cuhk_sysu_single', PICUHKSYSUSingle)):
        register_dataset(name, cls)


register()
