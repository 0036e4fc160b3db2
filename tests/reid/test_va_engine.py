"""VA-reID engine: refuses to start without viewpoint labels, default heads from the config,
observed-pairs classifier set from the training set, fallback classifier used only after its
warm-up, and learning on synth-ped."""
import os
import pickle
import shutil

import pytest
import torch

import reid_ext  # noqa: F401  (registers models and datasets)
from reid_ext.apis import build_datamanager, build_model, build_optimizer, build_scheduler, run
from reid_ext.config import get_default_config
from reid_ext.core.norm_linear import NormLinear
from reid_ext.datagen.synth_ped import generate
from reid_ext.datasets.side_labels import SideLabels
from reid_ext.engines.va_reid_engine import VAReIDEngine

from small_ped import SMALL  # tests/reid/small_ped.py


def _cfg(root, save_dir, *opts):
    cfg = get_default_config()
    cfg.merge_from_list([
        'model.name', 'va_reid_tiny', 'engine.name', 'va_reid', 'data.root', str(root),
        'data.save_dir', str(save_dir), 'data.height', 32, 'data.width', 16, 'data.workers', 0,
        'train.batch_size', 16, 'train.max_epoch', 1, 'train.warmup_epochs', 1,
        'train.stepsize', [5], 'test.batch_size', 64, 'test.normalize_feature', True,
        'va_reid.scale', 8.0, *opts])
    return cfg


def _parts(cfg):
    dm = build_datamanager(cfg)
    model = build_model(cfg, dm.num_train_pids)
    opt = build_optimizer(cfg, model)
    return dm, model, opt, build_scheduler(cfg, opt)


def _train_views(root):
    with open(root / 'synth-ped' / 'market1501' / 'viewpoint_labels.pkl', 'rb') as f:
        return {k: v[0] for k, v in pickle.load(f).items()}


def test_refuses_to_start_without_viewpoint_labels(small_root, tmp_path):
    bare = tmp_path / 'bare'
    shutil.copytree(small_root / 'synth-ped', bare / 'synth-ped')
    os.remove(bare / 'synth-ped' / 'market1501' / 'viewpoint_labels.pkl')
    with pytest.raises(FileNotFoundError, match='view_label_file'):
        run(_cfg(bare, tmp_path / 'w1'))
    assert not (tmp_path / 'w1' / 'model').exists()  # nothing trained
    # an explicit file that covers only part of the training set
    train_dir = bare / 'synth-ped' / 'market1501' / 'Market-1501-v15.09.15' / 'bounding_box_train'
    names = sorted(os.listdir(train_dir))
    part = tmp_path / 'part.pkl'
    part.write_bytes(pickle.dumps({n: (1, 'side') for n in names[::2]}))
    with pytest.raises(ValueError, match=r'training images have no viewpoint label.*'
                                         r'va_reid.view_label_file.*fallback_classifier'):
        run(_cfg(bare, tmp_path / 'w2', 'va_reid.view_label_file', [str(part)]))
    # direct construction without the table
    cfg = _cfg(small_root, tmp_path / 'w3')
    dm, model, opt, sched = _parts(cfg)
    with pytest.raises(ValueError, match='view_label_file'):
        VAReIDEngine(dm, model, opt, sched)


def test_default_heads_from_the_config(small_root, tmp_path):
    cfg = _cfg(small_root, tmp_path)
    _, model, _, _ = _parts(cfg)
    assert type(model.id_head) is torch.nn.Linear and model.id_head.bias is None
    assert type(model.view_head) is torch.nn.Linear and model.viewpoint_classifier is None
    cfg = _cfg(small_root, tmp_path, 'va_reid.vaal', True)
    _, model, _, _ = _parts(cfg)
    assert type(model.id_head) is NormLinear and type(model.view_head) is NormLinear


def test_observed_pairs_option_sets_the_training_pairs(small_root, tmp_path):
    cfg = _cfg(small_root, tmp_path, 'va_reid.observed_pairs', True)
    dm, model, opt, sched = _parts(cfg)
    engine = VAReIDEngine.from_config(cfg, dm, model, opt, sched)
    # reference from the files alone: (identity in the file name, coarse view) of every
    # training image; the model's rows are mapped back through torchreid's relabelling
    views = _train_views(small_root)
    train_dir = small_root / 'synth-ped' / 'market1501' / 'Market-1501-v15.09.15' / 'bounding_box_train'
    expected = {(int(n[:4]), views[n]) for n in os.listdir(train_dir)}
    original = {label: int(os.path.basename(path)[:4]) for path, label, *_ in dm.train_loader.dataset.train}
    got = {(original[i], v) for i, v in model.observed.nonzero().tolist()}
    assert len(expected) < 3 * len(original)  # the small set does miss some pairs
    assert got == expected
    model.train()
    out = model(torch.randn(4, 3, 32, 16))
    assert out['view_scores'].shape[1] == len(expected)
    summary = engine.forward_backward(next(iter(dm.train_loader)))
    assert {'loss_id', 'loss_view', 'loss_t'} <= set(summary)


def test_fallback_classifier_only_on_request_and_after_its_warmup(small_root, tmp_path):
    cfg = _cfg(small_root, tmp_path, 'va_reid.fallback_classifier', True,
               'va_reid.fallback_warmup_epochs', 2)
    dm, model, opt, sched = _parts(cfg)
    assert model.viewpoint_classifier is not None
    names = [it[0] for it in dm.train_loader.dataset.train]
    views = _train_views(small_root)
    half = SideLabels({n: views[os.path.basename(n)] for n in names[::2]}, by='path')
    engine = VAReIDEngine(dm, model, opt, sched, side_labels={'viewpoint': half},
                          fallback_classifier=True, fallback_warmup_epochs=2)
    data = next(iter(dm.train_loader))
    model.train()
    out = model(data['img'])
    raw = half.lookup(data['impath'])
    classes = model.pair_classes
    for epoch, expect_all in ((0, False), (1, False), (2, True)):
        engine.epoch = epoch
        used, use, _ = engine._views(data, out, data['pid'], classes)
        assert torch.equal(use, torch.ones_like(use) if expect_all else raw >= 0), epoch
        torch.testing.assert_close(used[raw >= 0], raw[raw >= 0])
        if expect_all:  # unknown ones come from the classifier
            pred = out['vp_logits'].argmax(1)
            torch.testing.assert_close(used[raw < 0], pred[raw < 0])
    summary = engine.forward_backward(data)
    assert 'loss_vp' in summary and 'view_acc' in summary


@pytest.mark.slow
def test_va_reid_learns_on_synth_ped(small_root, tmp_path):
    """A few epochs: the loss of a fixed batch falls and mAP rises above the untrained model's."""
    before = run(_cfg(small_root, tmp_path / 'u', 'test.evaluate', True)).results['synth_ped']['mAP']
    trained = run(_cfg(small_root, tmp_path / 't', 'train.max_epoch', 4, 'train.lr', 0.003))
    assert trained.results['synth_ped']['mAP'] > before
    cfg = _cfg(small_root, tmp_path / 'f')
    fresh = VAReIDEngine.from_config(cfg, *_parts(cfg))  # same seed: the untrained weights
    data = next(iter(trained.datamanager.train_loader))
    losses = []
    for engine in (fresh, trained):
        engine.model.train()
        with torch.no_grad():
            losses.append(float(engine.forward_loss(data)[0]))
    assert losses[1] < losses[0]


def test_two_source_datasets_merge_their_own_viewpoint_files(small_root, tmp_path):
    """synth_ped + synth_ped_style1 as sources: every training image gets the label of its own
    dataset's file (checked against the pickle in the image's folder)."""
    root = tmp_path / 'two'
    shutil.copytree(small_root / 'synth-ped', root / 'synth-ped')
    generate(root / 'synth-ped-style1', seed=6, style=1, **SMALL)
    cfg = _cfg(root, tmp_path / 'w', 'data.sources', ['synth_ped', 'synth_ped_style1'],
               'data.targets', ['synth_ped'])
    dm, model, opt, sched = _parts(cfg)
    engine = VAReIDEngine.from_config(cfg, dm, model, opt, sched)
    items = dm.train_loader.dataset.train
    assert len({it[3] for it in items}) == 2 and dm.num_train_pids == 2 * SMALL['num_train_ids']
    got = engine.side_labels['viewpoint'].lookup([it[0] for it in items]).tolist()
    expected = []
    for path, *_ in items:
        folder = os.path.dirname(os.path.dirname(os.path.dirname(path)))  # .../market1501
        with open(os.path.join(folder, 'viewpoint_labels.pkl'), 'rb') as f:
            expected.append(pickle.load(f)[os.path.basename(path)][0])
    assert got == expected
