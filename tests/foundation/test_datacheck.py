"""The framework-free validators: each malformed case raises the named error (file, line, field)."""
import json
import pickle

import numpy as np
import pytest

from mm_ext.core.datacheck import (DataFormatError, MissingDataFileError, check_cifar_batch, check_cifar_folder,
                                   check_market_dir, parse_market_name, read_odgt, read_video_list)

REC = {'ID': '273271,c9db000d5146c15',
       'gtboxes': [{'tag': 'person', 'fbox': [72, 202, 163, 503], 'hbox': [171, 208, 62, 83],
                    'vbox': [72, 202, 163, 398], 'extra': {'box_id': 0, 'occ': 1}}]}


def _odgt(tmp_path, lines):
    p = tmp_path / 'annotation_train.odgt'
    p.write_text('\n'.join(lines) + '\n')
    return p


def test_odgt_valid_file_reads_back_the_records(tmp_path):
    recs = [REC, dict(REC, ID='284193,faa9000f2678b5e')]
    p = _odgt(tmp_path, [json.dumps(r) for r in recs])
    assert read_odgt(p, box_keys=('fbox', 'hbox', 'vbox')) == recs


def test_odgt_truncated_line_names_file_and_line(tmp_path):
    full = json.dumps(REC)
    p = _odgt(tmp_path, [full, full[:117]])
    with pytest.raises(DataFormatError) as e:
        read_odgt(p)
    assert e.value.line == 2 and str(e.value).startswith(f'{p}:2: not valid JSON')
    assert 'truncated line?' in str(e.value)


@pytest.mark.parametrize('mutate, field', [
    (lambda r: r.pop('ID'), 'ID'),
    (lambda r: r.pop('gtboxes'), 'gtboxes'),
    (lambda r: r['gtboxes'][0].pop('tag'), 'gtboxes[0].tag'),
    (lambda r: r['gtboxes'][0].pop('vbox'), 'gtboxes[0].vbox'),
    (lambda r: r['gtboxes'][0].__setitem__('fbox', [1, 2, 3]), 'gtboxes[0].fbox'),
    (lambda r: r['gtboxes'][0].__setitem__('hbox', [1, 2, -3, 4]), 'gtboxes[0].hbox'),
])
def test_odgt_bad_fields_are_named(tmp_path, mutate, field):
    bad = json.loads(json.dumps(REC))
    mutate(bad)
    p = _odgt(tmp_path, [json.dumps(REC), json.dumps(REC), json.dumps(bad)])
    with pytest.raises(DataFormatError) as e:
        read_odgt(p, box_keys=('fbox', 'hbox', 'vbox'))
    assert (e.value.line, e.value.field) == (3, field), str(e.value)
    assert str(e.value).startswith(f"{p}:3: field '{field}'")


def test_odgt_blank_line_inside_and_missing_image(tmp_path):
    p = _odgt(tmp_path, [json.dumps(REC), '', json.dumps(REC)])
    with pytest.raises(DataFormatError, match=r':2: empty line inside the file'):
        read_odgt(p)
    p = _odgt(tmp_path, [json.dumps(REC)])
    (tmp_path / 'Images').mkdir()
    with pytest.raises(MissingDataFileError) as e:
        read_odgt(p, img_dir=str(tmp_path / 'Images'))
    assert isinstance(e.value, FileNotFoundError) and e.value.line == 1
    assert e.value.missing == str(tmp_path / 'Images' / '273271,c9db000d5146c15.jpg')
    assert f"{p}:1: field 'ID': record '273271,c9db000d5146c15' names image" in str(e.value)


def _cifar(folder, **batches):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / 'batches.meta', 'wb') as f:
        pickle.dump({'label_names': [str(i) for i in range(10)]}, f)
    for name, entry in batches.items():
        with open(folder / name, 'wb') as f:
            pickle.dump(entry, f)
    return folder


def _batch(n=4, **over):
    e = {'batch_label': 'x', 'labels': list(range(n)), 'data': np.zeros((n, 3072), np.uint8),
         'filenames': [f'{i}.png' for i in range(n)]}
    e.update(over)
    return e


def test_cifar_batches(tmp_path):
    ok = _cifar(tmp_path / 'ok', data_batch_1=_batch(), test_batch=_batch(3))
    check_cifar_folder(ok, ['data_batch_1', 'test_batch'])
    assert check_cifar_batch(ok / 'test_batch') == 3
    bad = _cifar(tmp_path / 'bad', data_batch_1=_batch(data=np.zeros((4, 32, 32, 3), np.uint8)),
                 data_batch_2=_batch(labels=[0, 1]), data_batch_3={'data': np.zeros((1, 3072), np.uint8)},
                 data_batch_4=_batch(labels=[0, 1, 2, 10]), data_batch_5=_batch(data=np.zeros((4, 3072))))
    cases = {'data_batch_1': ("'data'", r'expected shape \(N, 3072\).*got \(4, 32, 32, 3\)'),
             'data_batch_2': ("'labels'", 'expected 4 integer labels'),
             'data_batch_3': ("'labels'", r"missing 'labels'/'fine_labels' \(keys: \['data'\]\)"),
             'data_batch_4': ("'labels'", r'labels must lie in \[0, 10\)'),
             'data_batch_5': ("'data'", 'expected dtype uint8, got float64')}
    for name, (field, msg) in cases.items():
        with pytest.raises(DataFormatError, match=msg) as e:
            check_cifar_folder(bad, [name])
        assert str(e.value).startswith(f'{bad / name}: field {field}'), str(e.value)
    (bad / 'test_batch').write_bytes(pickle.dumps(_batch())[:50])
    with pytest.raises(DataFormatError, match=r'test_batch: cannot be unpickled'):
        check_cifar_batch(bad / 'test_batch')
    with pytest.raises(MissingDataFileError, match=r'data_batch_9: batch file does not exist'):
        check_cifar_folder(ok, ['data_batch_9'])


def test_video_list(tmp_path):
    (tmp_path / 'videos').mkdir()
    (tmp_path / 'videos' / 'a.mp4').write_bytes(b'\0' * 10)
    (tmp_path / 'videos' / 'empty.mp4').write_bytes(b'')
    lst = tmp_path / 'train_list_videos.txt'
    lst.write_text('a.mp4 3\n\na.mp4 0\n')
    assert read_video_list(lst, str(tmp_path / 'videos')) == [(1, str(tmp_path / 'videos' / 'a.mp4'), [3]),
                                                             (3, str(tmp_path / 'videos' / 'a.mp4'), [0])]
    for text, line, msg in [('a.mp4 3\na.mp4\n', 2, r"1 field\(s\) in 'a.mp4'"),
                            ('a.mp4 x\n', 1, r"field 'label': 'x' is not an integer"),
                            ('a.mp4 1 2\n', 1, r'3 field\(s\)'),
                            ('a.mp4 1\nmissing.mp4 2\n', 2, r"field 'video': names video .*missing.mp4, which does not"),
                            ('empty.mp4 1\n', 1, r'empty.mp4 is empty')]:
        lst.write_text(text)
        with pytest.raises(DataFormatError, match=msg) as e:
            read_video_list(lst, str(tmp_path / 'videos'))
        assert e.value.line == line and str(e.value).startswith(f'{lst}:{line}: ')


def test_market_names(tmp_path):
    assert parse_market_name('/x/0002_c1s1_000451_03.jpg') == (2, 1)
    assert parse_market_name('-1_c3s2_000001_00.jpg') == (-1, 3)
    for name, msg in [('0002-c1s1_000451_03.jpg', "file name '0002-c1s1_000451_03.jpg' does not parse"),
                      ('img_0001.jpg', 'does not parse'), ('0002_c7s1_000451_03.jpg', 'camera 7 outside 1..6'),
                      ('1600_c1s1_000451_03.jpg', 'person id 1600 outside -1..1501')]:
        with pytest.raises(DataFormatError, match=msg) as e:
            parse_market_name(tmp_path / name)
        assert str(e.value).startswith(str(tmp_path / name)) and 'e.g. 0002_c1s1_000451_03.jpg' in str(e.value)
    (tmp_path / '0001_c1s1_000001_00.jpg').write_bytes(b'')
    assert check_market_dir(tmp_path) == [(str(tmp_path / '0001_c1s1_000001_00.jpg'), 1, 1)]
    (tmp_path / 'IMG_1234.jpg').write_bytes(b'')
    with pytest.raises(DataFormatError, match='IMG_1234.jpg'):
        check_market_dir(tmp_path)
