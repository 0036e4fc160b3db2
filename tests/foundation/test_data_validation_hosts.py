"""The hosts' own dataset classes raise the named errors on malformed data and read valid data unchanged.

The checks are installed by ``import mm_ext`` (mm_ext._compat.data_validation) around mmdet's
CrowdHumanDataset, mmpretrain's CIFAR10, mmaction2's VideoDataset and torchreid's Market1501.
"""
import json
import os.path as osp
import pickle

import numpy as np
import pytest

import mm_ext  # noqa: F401  installs the checks
from mm_ext.core.datacheck import DataFormatError, MissingDataFileError

REC = {'ID': '0001', 'gtboxes': [{'tag': 'person', 'fbox': [2, 3, 10, 20], 'hbox': [4, 3, 4, 4],
                                  'vbox': [2, 3, 10, 18], 'extra': {'box_id': 0}},
                                 {'tag': 'mask', 'fbox': [20, 5, 8, 8], 'hbox': [20, 5, 2, 2],
                                  'vbox': [20, 5, 8, 8], 'extra': {'ignore': 1}}]}


def _crowd(tmp_path, lines, images=('0001', '0002')):
    import cv2
    (tmp_path / 'Images').mkdir(exist_ok=True)
    for i in images:
        cv2.imwrite(str(tmp_path / 'Images' / f'{i}.jpg'), np.full((40, 48, 3), 128, np.uint8))
    (tmp_path / 'annotation_train.odgt').write_text('\n'.join(lines) + '\n')
    for f in tmp_path.glob('id_hw_*.json'):
        f.unlink()


def _crowd_ds(tmp_path):
    from mmdet.datasets import CrowdHumanDataset
    return CrowdHumanDataset(data_root=str(tmp_path), ann_file='annotation_train.odgt',
                             data_prefix=dict(img='Images/'), pipeline=[], lazy_init=True)


def test_crowdhuman_dataset(tmp_path):
    from mmdet.datasets import CrowdHumanDataset
    good = [json.dumps(REC), json.dumps(dict(REC, ID='0002'))]
    _crowd(tmp_path, good)
    ds = _crowd_ds(tmp_path)
    got = ds.load_data_list()
    _crowd(tmp_path, good)
    ref = CrowdHumanDataset.load_data_list.__wrapped__(_crowd_ds(tmp_path))  # the host's own code
    assert got == ref and len(got) == 2 and got[0]['instances'][1]['ignore_flag'] == 1
    # truncated line (the JSONDecodeError): file and line named
    _crowd(tmp_path, [good[0], good[1][:40]])
    with pytest.raises(DataFormatError) as e:
        _crowd_ds(tmp_path).load_data_list()
    assert str(e.value).startswith(f'{tmp_path / "annotation_train.odgt"}:2: not valid JSON')
    # a missing field
    bad = json.loads(good[1])
    del bad['gtboxes'][1]['hbox']
    _crowd(tmp_path, [good[0], json.dumps(bad)])
    with pytest.raises(DataFormatError, match=r"annotation_train.odgt:2: field 'gtboxes\[1\].hbox': missing"):
        _crowd_ds(tmp_path).load_data_list()
    # an image the annotation names is missing
    _crowd(tmp_path, good + [json.dumps(dict(REC, ID='0003'))])
    with pytest.raises(MissingDataFileError) as e:
        _crowd_ds(tmp_path).load_data_list()
    assert e.value.line == 3 and e.value.missing.endswith(osp.join('Images', '0003.jpg'))
    assert "annotation_train.odgt:3: field 'ID': record '0003' names image" in str(e.value)


def _cifar_root(tmp_path, data=None, labels=None):
    folder = tmp_path / 'cifar-10-batches-py'
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with open(folder / 'batches.meta', 'wb') as f:
        pickle.dump({'label_names': [f'c{i}' for i in range(10)]}, f)
    for i, name in enumerate([f'data_batch_{k}' for k in range(1, 6)] + ['test_batch']):
        d = rng.integers(0, 255, (4, 3072), dtype=np.uint8)
        lab = [int(x) for x in rng.integers(0, 10, 4)]
        if name == 'data_batch_3':
            d = d if data is None else data
            lab = lab if labels is None else labels
        with open(folder / name, 'wb') as f:
            pickle.dump({'data': d, 'labels': lab}, f)
    return tmp_path


def test_cifar_batches(tmp_path):
    from mmpretrain.datasets import CIFAR10

    from mm_ext.mmpretrain.datasets import GeneratedCIFAR10
    root = _cifar_root(tmp_path)
    ds = GeneratedCIFAR10(data_root=str(root), split='train', pipeline=[], lazy_init=True)
    got = ds.load_data_list()
    ref = CIFAR10.load_data_list.__wrapped__(ds)
    assert len(got) == 20 and all((a['img'] == b['img']).all() and a['gt_label'] == b['gt_label']
                                  for a, b in zip(got, ref))
    _cifar_root(tmp_path, data=np.zeros((4, 32, 32, 3), np.uint8))
    with pytest.raises(DataFormatError) as e:
        GeneratedCIFAR10(data_root=str(root), split='train', pipeline=[])
    assert str(e.value).startswith(f"{root / 'cifar-10-batches-py' / 'data_batch_3'}: field 'data': expected shape")
    _cifar_root(tmp_path, labels=[1, 2])
    with pytest.raises(DataFormatError, match=r"data_batch_3: field 'labels': expected 4 integer labels"):
        GeneratedCIFAR10(data_root=str(root), split='train', pipeline=[])
    # the test split reads only test_batch: a bad train batch does not matter there
    assert len(GeneratedCIFAR10(data_root=str(root), split='test', pipeline=[])) == 4


def _videos(tmp_path, lines):
    import cv2
    vids = tmp_path / 'videos'
    vids.mkdir(exist_ok=True)
    w = cv2.VideoWriter(str(vids / 'ok.mp4'), cv2.VideoWriter_fourcc(*'mp4v'), 10, (32, 32))
    for i in range(12):
        w.write(np.full((32, 32, 3), 10 * i, np.uint8))
    w.release()
    (vids / 'broken.mp4').write_bytes(b'\x00\x00\x00\x18ftypmp42' + bytes(range(256)) * 8)
    lst = tmp_path / 'train_list_videos.txt'
    lst.write_text('\n'.join(lines) + '\n')
    return lst


def _video_ds(lst, tmp_path, pipeline=()):
    from mmaction.datasets import VideoDataset
    return VideoDataset(ann_file=str(lst), data_prefix=dict(video=str(tmp_path / 'videos')),
                        pipeline=list(pipeline))


def test_video_list_dataset(tmp_path):
    from mmaction.datasets import VideoDataset
    lst = _videos(tmp_path, ['ok.mp4 1', 'ok.mp4 0'])
    ds = _video_ds(lst, tmp_path)
    assert ds.load_data_list() == VideoDataset.load_data_list.__wrapped__(ds)
    assert len(ds) == 2
    lst = _videos(tmp_path, ['ok.mp4 1', 'ok.mp4'])
    with pytest.raises(DataFormatError, match=r"train_list_videos.txt:2: 1 field\(s\) in 'ok.mp4'"):
        _video_ds(lst, tmp_path)
    lst = _videos(tmp_path, ['ok.mp4 1', 'gone.mp4 1'])
    with pytest.raises(MissingDataFileError, match=r"train_list_videos.txt:2: field 'video': names video .*gone.mp4"):
        _video_ds(lst, tmp_path)
    lst = _videos(tmp_path, ['ok.mp4 1', 'broken.mp4 2'])
    ds = _video_ds(lst, tmp_path, [dict(type='mmaction.DecordInit')])
    assert ds[0]['total_frames'] == 12
    with pytest.raises(DataFormatError) as e:
        ds[1]
    assert str(e.value).startswith(f"{lst}:2: field 'video': video {tmp_path / 'videos' / 'broken.mp4'} "
                                   'cannot be decoded'), str(e.value)


def test_market1501_names(tmp_path):
    from torchreid.reid.data.datasets.image.market1501 import Market1501
    top = tmp_path / 'market1501' / 'Market-1501-v15.09.15'
    names = {'bounding_box_train': ['0002_c1s1_000451_03.jpg', '0002_c2s1_000551_01.jpg', '0007_c3s1_000001_00.jpg'],
             'query': ['0003_c1s1_000001_00.jpg'], 'bounding_box_test': ['0003_c2s1_000001_00.jpg',
                                                                          '-1_c1s1_000001_00.jpg']}
    for d, files in names.items():
        (top / d).mkdir(parents=True)
        for n in files:
            (top / d / n).write_bytes(b'')
    ds = Market1501(root=str(tmp_path))
    assert sorted((osp.basename(p), pid, cam) for p, pid, cam, *_ in ds.train) == [
        ('0002_c1s1_000451_03.jpg', 0, 0), ('0002_c2s1_000551_01.jpg', 0, 1), ('0007_c3s1_000001_00.jpg', 1, 2)]
    (top / 'bounding_box_train' / '0002-c1s1_000452_03.jpg').write_bytes(b'')
    with pytest.raises(DataFormatError) as e:
        Market1501(root=str(tmp_path))
    msg = str(e.value)
    assert msg.startswith(str(top / 'bounding_box_train' / '0002-c1s1_000452_03.jpg'))
    assert "does not parse" in msg and '<pid>_c<camera>s<seq>_<frame>_<box>.jpg' in msg
