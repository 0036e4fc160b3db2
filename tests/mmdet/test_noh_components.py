"""NOH-NMS mmdet adapters: registration, targets, losses, inference dispatch, Recall metric."""
import importlib
import json
import math
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip('mmcv.ops')
mmdet = pytest.importorskip('mmdet')

from mmengine.config import ConfigDict  # noqa: E402
from mmengine.structures import InstanceData  # noqa: E402

import mm_ext.mmdet  # noqa: E402,F401  registers the components
from mmdet.models.utils import unpack_gt_instances  # noqa: E402
from mmdet.registry import METRICS, MODELS, TASK_UTILS  # noqa: E402
from mmdet.structures import DetDataSample  # noqa: E402

G0, G1, G2 = [0., 0., 10., 20.], [3., 0., 13., 20.], [40., 0., 50., 20.]
IGN = [2., 0., 12., 20.]  # ignore region: as close to the proposal as G0


def _head(**kw):
    cfg = dict(type='NOHBBoxHead', in_channels=4, fc_out_channels=8, noh_fc_out_channels=8, roi_feat_size=1,
               num_classes=1, reg_class_agnostic=False,
               bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.] * 4, target_stds=[0.1, 0.1, 0.2, 0.2]),
               loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
               loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))
    cfg.update(kw)
    return MODELS.build(cfg)


def test_noh_components_registered_and_reload_is_idempotent():
    from mm_ext.mmdet.noh import noh_bbox_head

    for reg, name in ((MODELS, 'NOHRoIHead'), (MODELS, 'NOHBBoxHead'), (MODELS, 'NOHAvgPoolFPN'), (TASK_UTILS, 'NOHNearbyAssigner'),
                      (TASK_UTILS, 'NOHIoAIgnoreAssigner'), (METRICS, 'CrowdHumanRecallMetric')):
        assert reg.get(name) is not None, name
    importlib.reload(noh_bbox_head)
    assert MODELS.get('NOHBBoxHead') is noh_bbox_head.NOHBBoxHead


def test_noh_targets_second_best_gt_excludes_ignore_regions():
    sample = DetDataSample()
    sample.gt_instances = InstanceData(bboxes=torch.tensor([G0, G1, G2]), labels=torch.zeros(3, dtype=torch.long))
    sample.ignored_instances = InstanceData(bboxes=torch.tensor([IGN]), labels=torch.zeros(1, dtype=torch.long))
    gts, gts_ignore, _ = unpack_gt_instances([sample])
    head = _head()
    prop = torch.tensor([[1., 0., 11., 20.]])  # IoU 9/11 with G0 (and IGN), 2/3 with G1
    res = SimpleNamespace(pos_priors=prop, neg_priors=torch.tensor([[100., 0., 110., 20.]]))
    nearby_iou, deltas = head.get_noh_targets([res], gts)
    assert nearby_iou.tolist() == pytest.approx([2 / 3, 0.0])
    # proposal centre x 6, G1 centre x 8, same size: dx = (2 / 10) / 0.1 = 2
    assert torch.allclose(deltas, torch.tensor([[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]), atol=1e-5)
    # a single-GT image has no nearby object
    one = InstanceData(bboxes=torch.tensor([G0]), labels=torch.zeros(1, dtype=torch.long))
    iou1, _ = head.get_noh_targets([SimpleNamespace(pos_priors=prop, neg_priors=prop[:0])], [one])
    assert iou1.tolist() == [0.0]
    assert len(gts_ignore[0]) == 1  # the ignore region travels separately


def test_ioa_ignore_assigner_ignores_negatives_inside_ignore_regions():
    assigner = TASK_UTILS.build(dict(type='NOHIoAIgnoreAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5,
                                     min_pos_iou=0.5, match_low_quality=False))
    priors = torch.tensor([[2., 0., 12., 20.],     # IoU 2/3 with G0: stays positive
                           [62., 2., 70., 20.],    # inside the ignore region: IoA 1 > IoU 0
                           [200., 0., 210., 20.]])  # far from everything: negative
    gt = InstanceData(bboxes=torch.tensor([G0, G2]), labels=torch.zeros(2, dtype=torch.long))
    ign = InstanceData(bboxes=torch.tensor([[60., 0., 100., 40.]]), labels=torch.zeros(1, dtype=torch.long))
    res = assigner.assign(InstanceData(priors=priors), gt, ign)
    assert res.gt_inds.tolist() == [1, -1, 0]


def test_noh_losses_hand_computed():
    head = _head()
    labels = torch.tensor([0, 1])  # one foreground RoI, one background (label num_classes)
    losses = head.noh_loss(torch.zeros(2), torch.zeros(2, 4), labels, torch.tensor([0.6, 0.0]),
                           torch.tensor([[2., 0., 0., 0.], [0., 0., 0., 0.]]))
    # score: sigmoid(0) = 0.5, |0.5 - 0.6| = 0.1 >= beta 0.02 -> 0.1 - 0.01, over 1 fg RoI
    assert losses['loss_noh_score'].item() == pytest.approx(0.09, rel=1e-5)
    # box: |2| >= beta 1 -> 2 - 0.5, over 2 sampled RoIs (uniform divisor)
    assert losses['loss_noh_bbox'].item() == pytest.approx(0.75, rel=1e-5)
    # nearby IoU below the 0.4 gate: no box loss
    low = head.noh_loss(torch.zeros(2), torch.zeros(2, 4), labels, torch.tensor([0.3, 0.0]),
                        torch.tensor([[2., 0., 0., 0.], [0., 0., 0., 0.]]))
    assert low['loss_noh_bbox'].item() == 0.0
    head2 = _head(noh_uniform_divisor=False, noh_reg_loss_coeff=0.1)
    l2 = head2.noh_loss(torch.zeros(2), torch.zeros(2, 4), labels, torch.tensor([0.6, 0.0]),
                        torch.tensor([[2., 0., 0., 0.], [0., 0., 0., 0.]]))
    assert l2['loss_noh_bbox'].item() == pytest.approx(0.15, rel=1e-5)


def test_noh_bbox_head_forward_shapes_and_init():
    head = _head()
    head.init_weights()
    cls, reg, p, o = head(torch.randn(5, 4, 1, 1))
    assert cls.shape == (5, 2) and reg.shape == (5, 4) and p.shape == (5,) and o.shape == (5, 4)
    assert head.fc_noh_reg.weight.std().item() < 0.01 and head.fc_noh_score.bias.abs().max().item() == 0


def _predict(method, **nms):
    head = _head()
    rois = torch.tensor([[0.] + G0, [0.] + G1])
    cls = torch.tensor([[3.0, 0.0], [2.0, 0.0]])  # person scores 0.95, 0.88
    deltas = torch.zeros(2, 4)
    # RoI 0 hallucinates exactly RoI 1; RoI 1 hallucinates nothing nearby
    noh_pred = torch.stack([head.bbox_coder.encode(rois[:1, 1:], rois[1:, 1:])[0], torch.zeros(4)])
    noh_logit = torch.tensor([3.0, -3.0])
    cfg = ConfigDict(score_thr=0.05, nms=dict(type=method, iou_threshold=0.5, **nms), max_per_img=100)
    meta = dict(img_shape=(40, 60), scale_factor=(1.0, 1.0))
    return head.predict_by_feat((rois,), (cls,), (deltas,), [meta], cfg, rescale=False,
                                noh_scores=(noh_logit,), noh_preds=(noh_pred,))[0]


def test_noh_bbox_head_predict_dispatches_nms_method():
    noh = _predict('noh')
    assert len(noh) == 2  # the neighbour survives (w = 1)
    assert noh.scores.tolist() == pytest.approx([1 / (1 + math.exp(-3)), 1 / (1 + math.exp(-2))], rel=1e-5)
    assert torch.allclose(noh.noh_bboxes[0], torch.tensor(G1), atol=1e-3)
    assert len(_predict('greedy')) == 1
    assert len(_predict('adaptive')) == 2  # density sigmoid(3) = 0.95 > IoU 7/13
    assert len(_predict('soft', soft_method='linear')) == 2
    with pytest.raises(ValueError, match='unknown NMS method'):
        _predict('bogus')


def test_recall_metric_hand_computed(tmp_path):
    ann = tmp_path / 'ann.odgt'
    box = lambda b: [b[0], b[1], b[2] - b[0], b[3] - b[1]]  # noqa: E731
    recs = [
        {'ID': 'a', 'gtboxes': [{'tag': 'person', 'fbox': box(G0), 'hbox': box(G0), 'vbox': box(G0)},
                                {'tag': 'person', 'fbox': box(G2), 'hbox': box(G2), 'vbox': box(G2)},
                                {'tag': 'mask', 'fbox': [60, 0, 40, 40], 'hbox': [60, 0, 40, 40],
                                 'vbox': [60, 0, 40, 40], 'extra': {'ignore': 1}}]},
        {'ID': 'b', 'gtboxes': [{'tag': 'person', 'fbox': box(G1), 'hbox': box(G1), 'vbox': box(G1)}]},
    ]
    ann.write_text('\n'.join(json.dumps(r) for r in recs) + '\n')
    metric = METRICS.build(dict(type='CrowdHumanRecallMetric', ann_file=str(ann), metric=['AP', 'MR', 'Recall']))
    preds = {'a': ([G0, [62., 2., 70., 20.], [150., 0., 160., 20.]], [0.9, 0.8, 0.7]),  # tp, ignored, fp
             'b': ([[200., 0., 210., 20.]], [0.6])}  # fp
    samples = []
    for img_id, (bboxes, scores) in preds.items():
        samples.append(dict(img_id=img_id, ori_shape=(60, 300),
                            pred_instances=dict(bboxes=torch.tensor(bboxes), scores=torch.tensor(scores))))
    metric.process({}, samples)
    out = metric.compute_metrics(metric.results)
    assert out['Recall'] == pytest.approx(round(1 / 3, 4))
    assert 'mAP' in out and 'mMR' in out
    only = METRICS.build(dict(type='CrowdHumanRecallMetric', ann_file=str(ann), metric='Recall'))
    only.process({}, samples)
    assert only.compute_metrics(only.results) == {'Recall': pytest.approx(round(1 / 3, 4))}


@pytest.mark.parametrize('name', ['noh-nms_faster-rcnn_r50_fpn_8xb2-30e_crowdhuman.py',
                                  'greedy_faster-rcnn_r50_fpn_8xb2-30e_crowdhuman.py'])
def test_paper_configs_build(name, repo_root):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    init_default_scope('mmdet')
    cfg = Config.fromfile(str(repo_root / 'configs/mmdet/noh' / name))
    assert cfg.train_dataloader.dataset.ann_file == 'annotation_train.odgt'
    assert cfg.model.rpn_head.anchor_generator.ratios == [1.0, 2.0, 3.0]
    assert cfg.model.train_cfg.rcnn.sampler.num == 512 and cfg.model.train_cfg.rcnn.sampler.pos_fraction == 0.5
    assert cfg.optim_wrapper.optimizer.lr == 0.04 and cfg.auto_scale_lr.base_batch_size == 16
    assert cfg.model.test_cfg.rcnn.score_thr == 0.05 and cfg.model.test_cfg.rcnn.max_per_img == 200
    model = MODELS.build(cfg.model)
    noh = 'noh-nms' in name
    assert hasattr(model.roi_head.bbox_head, 'noh_fcs') == noh
    assert cfg.model.test_cfg.rcnn.nms['type'] == ('noh' if noh else 'nms')


def test_synth_crowd_loads_with_stock_crowdhuman_dataset(dataset):
    from mmengine.registry import init_default_scope

    from mmdet.registry import DATASETS

    init_default_scope('mmdet')
    root = dataset('synth-crowd', num_train=4, num_val=2, suffix='tiny')
    recs = [json.loads(line) for line in (root / 'annotation_train.odgt').read_text().splitlines() if line]
    ds = DATASETS.build(dict(type='CrowdHumanDataset', data_root=str(root), ann_file='annotation_train.odgt',
                             data_prefix=dict(img='Images/'), pipeline=[]))
    assert len(ds) == 4 and (root / 'id_hw_train.json').is_file()
    for rec, info in zip(recs, (ds.get_data_info(i) for i in range(len(ds)))):
        assert info['img_id'] == rec['ID'] and (info['height'], info['width']) == (160, 256)
        assert (root / 'Images' / f"{rec['ID']}.jpg").is_file()
        tags = [g['tag'] for g in rec['gtboxes']]
        assert [inst['ignore_flag'] for inst in info['instances']] == [int(t != 'person') for t in tags]
        assert 'person' in tags
        for g, inst in zip(rec['gtboxes'], info['instances']):
            x, y, w, h = g['fbox']
            assert inst['bbox'] == pytest.approx([x, y, x + w, y + h])


def test_synth_crowd_generator_is_seeded_and_crowded(tmp_path):
    from mm_ext.datagen.synth_crowd import generate

    a = generate(tmp_path / 'a', seed=3, num_train=6, num_val=2)
    generate(tmp_path / 'b', seed=3, num_train=6, num_val=2)
    generate(tmp_path / 'c', seed=4, num_train=6, num_val=2)
    same = (tmp_path / 'a/annotation_train.odgt').read_text() == (tmp_path / 'b/annotation_train.odgt').read_text()
    other = (tmp_path / 'a/annotation_train.odgt').read_text() == (tmp_path / 'c/annotation_train.odgt').read_text()
    assert same and not other
    assert a['persons'] > 8
    with pytest.raises(ValueError, match='width/height'):
        generate(tmp_path / 'd', width=32, height=32)
    # overlapping pairs above the NMS threshold exist: the case greedy NMS gets wrong
    big = generate(tmp_path / 'e', seed=0, num_train=30, num_val=1)
    recs = [json.loads(x) for x in (tmp_path / 'e/annotation_train.odgt').read_text().splitlines() if x]
    from mm_ext.core.nms._rounds import pairwise_iou

    n_high = 0
    for rec in recs:
        b = torch.tensor([[g['fbox'][0], g['fbox'][1], g['fbox'][0] + g['fbox'][2], g['fbox'][1] + g['fbox'][3]]
                          for g in rec['gtboxes'] if g['tag'] == 'person'])
        n_high += int(torch.triu(pairwise_iou(b, b) > 0.5, diagonal=1).sum())
    assert n_high >= 5 and big['ignore_regions'] >= 1


def test_avg_pool_fpn_p6_is_2x2_average_of_p5():
    import torch.nn.functional as F

    fpn = MODELS.build(dict(type='NOHAvgPoolFPN', in_channels=[4, 8], out_channels=6, num_outs=4))
    stock = MODELS.build(dict(type='FPN', in_channels=[4, 8], out_channels=6, num_outs=4))
    stock.load_state_dict(fpn.state_dict())
    feats = (torch.randn(1, 4, 16, 16), torch.randn(1, 8, 8, 8))
    outs, ref = fpn(feats), stock(feats)
    assert [o.shape[-1] for o in outs] == [16, 8, 4, 2]
    assert torch.equal(outs[0], ref[0]) and torch.equal(outs[1], ref[1])
    assert torch.allclose(outs[2], F.avg_pool2d(outs[1], 2, 2)) and torch.allclose(outs[3], F.avg_pool2d(outs[2], 2, 2))
    assert not torch.allclose(outs[2], ref[2])  # mmdet's 1x1 max-pool subsamples instead
    with pytest.raises(ValueError, match='add_extra_convs'):
        MODELS.build(dict(type='NOHAvgPoolFPN', in_channels=[4, 8], out_channels=6, num_outs=4,
                          add_extra_convs='on_input'))
