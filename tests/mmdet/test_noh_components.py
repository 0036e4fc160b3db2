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

    from mmdet.registry import TRANSFORMS

    for reg, name in ((MODELS, 'NOHRoIHead'), (MODELS, 'NOHBBoxHead'), (MODELS, 'NOHAvgPoolFPN'),
                      (MODELS, 'NOHRPNHead'), (MODELS, 'NOHTTAModel'), (TASK_UTILS, 'NOHNearbyAssigner'),
                      (TRANSFORMS, 'NOHSelectBodyBox'),
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


def _predict(nms_type, **nms):
    head = _head()
    rois = torch.tensor([[0.] + G0, [0.] + G1])
    cls = torch.tensor([[3.0, 0.0], [2.0, 0.0]])  # person scores 0.95, 0.88
    deltas = torch.zeros(2, 4)
    # RoI 0 hallucinates exactly RoI 1; RoI 1 hallucinates nothing nearby
    noh_pred = torch.stack([head.bbox_coder.encode(rois[:1, 1:], rois[1:, 1:])[0], torch.zeros(4)])
    noh_logit = torch.tensor([3.0, -3.0])
    cfg = ConfigDict(score_thr=0.05, nms=dict(type=nms_type, iou_threshold=0.5, **nms), max_per_img=100)
    meta = dict(img_shape=(40, 60), scale_factor=(1.0, 1.0))
    return head.predict_by_feat((rois,), (cls,), (deltas,), [meta], cfg, rescale=False,
                                noh_scores=(noh_logit,), noh_preds=(noh_pred,))[0]


def test_noh_bbox_head_predict_dispatches_nms_method():
    noh = _predict('noh_nms')
    assert len(noh) == 2  # the neighbour survives (w = 1)
    assert noh.scores.tolist() == pytest.approx([1 / (1 + math.exp(-3)), 1 / (1 + math.exp(-2))], rel=1e-5)
    assert torch.allclose(noh.noh_bboxes[0], torch.tensor(G1), atol=1e-3)
    assert len(_predict('crowd_nms', method='noh')) == 2
    assert len(_predict('nms')) == 1 and len(_predict('greedy')) == 1
    assert len(_predict('crowd_nms', method='adaptive')) == 2  # density sigmoid(3) = 0.95 > IoU 7/13
    assert len(_predict('soft_nms', method='linear')) == 2
    assert len(_predict('nms', class_agnostic=True, split_thr=1)) == 1
    with pytest.raises(ValueError, match='unknown nms type'):
        _predict('bogus')
    with pytest.raises(ValueError, match='does not take'):
        _predict('nms', sigma=0.5)
    with pytest.raises(ValueError, match='offset=1'):
        _predict('soft_nms', offset=1)


def _two_heads(num_classes=3, seed=0, clip_border=True):
    """A NOH head and mmdet's Shared2FCBBoxHead sharing the detection weights."""
    torch.manual_seed(seed)
    coder = dict(type='DeltaXYWHBBoxCoder', target_means=[0.] * 4, target_stds=[0.1, 0.1, 0.2, 0.2],
                 clip_border=clip_border)
    noh = _head(num_classes=num_classes, bbox_coder=coder)
    stock_cfg = dict(type='Shared2FCBBoxHead', in_channels=4, fc_out_channels=8, roi_feat_size=1,
                     num_classes=num_classes, reg_class_agnostic=False, bbox_coder=coder)
    stock = MODELS.build(stock_cfg)
    stock.load_state_dict({k: v for k, v in noh.state_dict().items() if k in stock.state_dict()})
    return noh, stock


def _rois(n, seed, img=(120, 200)):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * torch.tensor([img[1] - 30., img[0] - 60.])
    wh = torch.tensor([20., 50.]) * (0.8 + 0.4 * torch.rand(n, 2, generator=g))
    return torch.cat([torch.zeros(n, 1), xy, xy + wh], 1)


@pytest.mark.parametrize('nms', [dict(type='nms', iou_threshold=0.5),
                                 dict(type='nms', iou_threshold=0.4, class_agnostic=True),
                                 dict(type='soft_nms', iou_threshold=0.5, method='linear', min_score=0.05),
                                 dict(type='soft_nms', iou_threshold=0.3, method='gaussian', sigma=0.5,
                                      min_score=0.05)])
def test_noh_head_with_mmdet_nms_cfg_equals_mmdet_head(nms):
    """Oracle: mmdet's own Shared2FCBBoxHead + multiclass_nms (mmcv nms / soft_nms), rescaled."""
    noh, stock = _two_heads()
    cfg = ConfigDict(score_thr=0.05, nms=nms, max_per_img=60)
    metas = [dict(img_shape=(120, 200), scale_factor=(0.5, 0.25)), dict(img_shape=(120, 200), scale_factor=(2., 2.))]
    rois = [_rois(80, 1), _rois(50, 2)]
    torch.manual_seed(3)
    cls = [torch.randn(80, 4) * 2, torch.randn(50, 4) * 2]
    deltas = [torch.randn(80, 12) * 0.5, torch.randn(50, 12) * 0.5]
    noh_s = [torch.randn(80), torch.randn(50)]
    noh_p = [torch.randn(80, 4) * 0.1, torch.randn(50, 4) * 0.1]
    got = noh.predict_by_feat(tuple(rois), tuple(cls), tuple(deltas), metas, cfg, rescale=True,
                              noh_scores=tuple(noh_s), noh_preds=tuple(noh_p))
    want = stock.predict_by_feat(tuple(rois), tuple(cls), tuple(deltas), metas, cfg, rescale=True)
    for g, w in zip(got, want):
        assert len(w) > 5
        assert torch.equal(g.labels, w.labels)
        assert torch.allclose(g.bboxes, w.bboxes, atol=1e-4) and torch.allclose(g.scores, w.scores, atol=1e-6)


def test_crowd_nms_type_in_a_stock_mmdet_head():
    """type='crowd_nms' resolves inside mmcv's batched_nms for any mmdet head."""
    noh, stock = _two_heads(num_classes=2, seed=1)
    metas = [dict(img_shape=(120, 200), scale_factor=(1., 1.))]
    rois, cls, deltas = (_rois(60, 4),), (torch.randn(60, 3) * 2,), (torch.randn(60, 8) * 0.5,)

    def run(head, nms, **kw):
        return head.predict_by_feat(rois, cls, deltas, metas, ConfigDict(score_thr=0.05, nms=nms, max_per_img=50),
                                    **kw)[0]

    greedy = run(stock, dict(type='nms', iou_threshold=0.5))
    crowd = run(stock, dict(type='crowd_nms', method='greedy', iou_threshold=0.5))
    assert torch.equal(crowd.labels, greedy.labels) and torch.allclose(crowd.bboxes, greedy.bboxes)
    soft_cfg = dict(type='crowd_nms', method='soft_linear', iou_threshold=0.5, min_score=0.05)
    stock_soft = run(stock, soft_cfg)
    noh_soft = run(noh, soft_cfg, noh_scores=(torch.randn(60),), noh_preds=(torch.zeros(60, 4),))
    assert torch.equal(stock_soft.labels, noh_soft.labels)
    assert torch.allclose(stock_soft.scores, noh_soft.scores, atol=1e-6)
    with pytest.raises(ValueError, match='NOHRoIHead'):
        run(stock, dict(type='crowd_nms', method='noh'))


def test_noh_head_clipping_follows_the_bbox_coder_and_rescale():
    roi = torch.tensor([[0., 150., 10., 199., 60.]])  # near the right border of a 200-wide image
    delta = torch.tensor([[0., 0., 2.0, 0.0]])  # 5 * ln(e^0.4): much wider than the image allows
    cls, noh_s, noh_p = torch.tensor([[3.0, 0.0]]), torch.tensor([2.0]), torch.tensor([[3.0, 0., 0., 0.]])
    meta = dict(img_shape=(100, 200), scale_factor=(2.0, 4.0))
    out = {}
    for clip in (True, False):
        head, _ = _two_heads(num_classes=1, clip_border=clip)
        for rescale in (False, True):
            out[clip, rescale] = head.predict_by_feat((roi,), (cls,), (delta,), [meta],
                                                      ConfigDict(score_thr=0.05, nms=dict(type='noh_nms'),
                                                                 max_per_img=10),
                                                      rescale=rescale, noh_scores=(noh_s,), noh_preds=(noh_p,))[0]
    assert out[True, False].bboxes[0, 2] == 200 and out[True, False].noh_bboxes[0, 2] == 200
    assert out[False, False].bboxes[0, 2] > 200 and out[False, False].noh_bboxes[0, 2] > 200
    scale = torch.tensor([2.0, 4.0, 2.0, 4.0])
    for clip in (True, False):
        assert torch.allclose(out[clip, True].bboxes, out[clip, False].bboxes / scale)
        assert torch.allclose(out[clip, True].noh_bboxes, out[clip, False].noh_bboxes / scale)
    head, _ = _two_heads(num_classes=1)
    with pytest.raises(ValueError, match='clip_border'):
        head.predict_by_feat((roi,), (cls,), (delta,), [meta],
                             ConfigDict(score_thr=0.05, nms=dict(type='nms'), max_per_img=10, clip_border=False),
                             noh_scores=(noh_s,), noh_preds=(noh_p,))


def test_noh_targets_align_with_rois_over_several_images():
    """Oracle: per RoI of the batched bbox2roi order, mmdet's bbox_overlaps with its own image's GTs."""
    from mmdet.models.task_modules.assigners import MaxIoUAssigner
    from mmdet.models.task_modules.samplers import RandomSampler
    from mmdet.structures.bbox import bbox2roi, bbox_overlaps

    torch.manual_seed(0)
    head = _head()
    assigner = MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.5, match_low_quality=False)
    sampler = RandomSampler(num=32, pos_fraction=0.5, add_gt_as_proposals=True)
    gts = [InstanceData(bboxes=torch.tensor([G0, G1, G2]), labels=torch.zeros(3, dtype=torch.long)),
           InstanceData(bboxes=torch.tensor([[5., 5., 25., 55.], [12., 5., 32., 55.]]),
                        labels=torch.zeros(2, dtype=torch.long))]
    results = []
    for gt in gts:
        props = gt.bboxes.repeat(8, 1) + torch.randn(8 * len(gt), 4) * 2
        pred = InstanceData(priors=torch.cat([props, torch.tensor([[100., 100., 120., 150.]])]))
        results.append(sampler.sample(assigner.assign(pred, gt), pred, gt))
    nearby_iou, deltas = head.get_noh_targets(results, gts)
    rois = bbox2roi([r.priors for r in results])
    labels = head.get_targets(results, ConfigDict(pos_weight=-1))[0]
    assert nearby_iou.shape == (len(rois),) == labels.shape
    for i, roi in enumerate(rois):
        gt = gts[int(roi[0])].bboxes
        if labels[i] == head.num_classes:  # background: no nearby target
            assert nearby_iou[i] == 0
            continue
        top2 = bbox_overlaps(roi[None, 1:], gt)[0].sort(descending=True).values
        assert nearby_iou[i].item() == pytest.approx(top2[1].item(), abs=1e-6)
    assert (labels < head.num_classes).sum() > 10


def test_noh_tta_model_keeps_noh_outputs_through_flip_merge():
    from mmdet.structures import DetDataSample
    from mmdet.structures.bbox import bbox_flip

    from mm_ext.core.nms import batched_crowd_nms

    class Detector(torch.nn.Module):  # merge_preds needs no forward; BaseTTAModel checks test_step
        def test_step(self, data):
            raise NotImplementedError

    torch.manual_seed(0)
    tta = MODELS.get('NOHTTAModel')(module=Detector(),
                                    tta_cfg=dict(nms=dict(type='noh_nms', iou_threshold=0.5), max_per_img=50))
    shape = (100, 200)
    views, raw = [], []
    for flip in (False, True):
        rois = _rois(30, 7 + flip, img=shape)[:, 1:]
        inst = InstanceData(bboxes=rois, scores=torch.rand(30) * 0.9 + 0.1, labels=torch.zeros(30, dtype=torch.long),
                            noh_scores=torch.rand(30), noh_bboxes=rois + torch.randn(30, 4))
        s = DetDataSample(metainfo=dict(ori_shape=shape, flip=flip, flip_direction='horizontal' if flip else None))
        s.pred_instances = inst
        views.append(s)
        f = (lambda b: bbox_flip(b, shape, 'horizontal')) if flip else (lambda b: b)
        raw.append((f(inst.bboxes), inst.scores, f(inst.noh_bboxes), inst.noh_scores))
    merged = tta.merge_preds([views])[0].pred_instances
    b, sc, o, p = (torch.cat(x) for x in zip(*raw))
    keep, final = batched_crowd_nms(b, sc, torch.zeros(60, dtype=torch.long), p, o, method='noh', max_num=50)
    assert torch.equal(merged.bboxes, b[keep]) and torch.equal(merged.scores, final)
    assert torch.equal(merged.noh_bboxes, o[keep]) and torch.equal(merged.noh_scores, p[keep])
    for v in views:  # a detector without the NOH outputs: refused for a NOH merge
        del v.pred_instances.noh_scores
    with pytest.raises(ValueError, match='NOHRoIHead'):
        tta.merge_preds([views])


def test_noh_rpn_head_topk_over_all_levels():
    """Oracle: all levels' anchors ranked together, decoded, then mmcv batched_nms per level."""
    from mmcv.ops import batched_nms

    cfg = dict(type='NOHRPNHead', in_channels=4, feat_channels=4,
               anchor_generator=dict(type='AnchorGenerator', scales=[8], ratios=[1.0, 2.0], strides=[4, 8]),
               bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.] * 4, target_stds=[1.] * 4))
    torch.manual_seed(0)
    head = MODELS.build(cfg)
    feats = (torch.randn(1, 4, 16, 16), torch.randn(1, 4, 8, 8))
    cls, reg = head(feats)
    test_cfg = ConfigDict(nms_pre=100, max_per_img=40, nms=dict(type='nms', iou_threshold=0.7), min_bbox_size=-1)
    meta = dict(img_shape=(64, 64), scale_factor=(1., 1.))
    got = head.predict_by_feat(cls, reg, batch_img_metas=[meta], cfg=test_cfg, rescale=False)[0]
    anchors = head.prior_generator.grid_priors([c.shape[-2:] for c in cls], device='cpu')
    scores = torch.cat([c[0].permute(1, 2, 0).reshape(-1) for c in cls]).sigmoid()
    deltas = torch.cat([r[0].permute(1, 2, 0).reshape(-1, 4) for r in reg])
    levels = torch.cat([torch.full((len(a),), i) for i, a in enumerate(anchors)])
    top = scores.argsort(descending=True)[:100]
    boxes = head.bbox_coder.decode(torch.cat(anchors)[top], deltas[top], max_shape=(64, 64))
    dets, _ = batched_nms(boxes, scores[top], levels[top], dict(type='nms', iou_threshold=0.7))
    assert torch.allclose(got.bboxes, dets[:40, :4]) and torch.allclose(got.scores, dets[:40, 4])
    per_level = MODELS.build(dict(cfg, type='RPNHead'))
    per_level.load_state_dict(head.state_dict())
    few = ConfigDict(test_cfg, nms_pre=10)  # 10 over all levels vs mmdet's 10 per level
    assert len(head.predict_by_feat(cls, reg, batch_img_metas=[meta], cfg=few)[0]) <= 10 < \
        len(per_level.predict_by_feat(cls, reg, batch_img_metas=[meta], cfg=few)[0])


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
    # AP and MR^-2 are mmdet's own CrowdHumanMetric's (the oracle) on the same predictions
    stock = METRICS.build(dict(type='CrowdHumanMetric', ann_file=str(ann), metric=['AP', 'MR']))
    stock.process({}, samples)
    ref = stock.compute_metrics(stock.results)
    assert out['mAP'] == ref['mAP'] and out['mMR'] == ref['mMR']
    only = METRICS.build(dict(type='CrowdHumanRecallMetric', ann_file=str(ann), metric='Recall'))
    only.process({}, samples)
    assert only.compute_metrics(only.results) == {'Recall': pytest.approx(round(1 / 3, 4))}
    # visible bodies: the same as mmdet's metric on an annotation whose fbox is the vbox
    for r in recs:
        for g in r['gtboxes']:
            g['vbox'] = [g['fbox'][0] + 1, g['fbox'][1], g['fbox'][2] - 2, g['fbox'][3] * 0.6]
    ann.write_text('\n'.join(json.dumps(r) for r in recs) + '\n')
    swapped = tmp_path / 'swapped.odgt'
    swapped.write_text('\n'.join(json.dumps(dict(r, gtboxes=[dict(g, fbox=g['vbox']) for g in r['gtboxes']]))
                                 for r in recs) + '\n')
    vis = METRICS.build(dict(type='CrowdHumanRecallMetric', ann_file=str(ann), metric=['AP', 'MR', 'Recall'],
                             gt_box_key='vbox'))
    ref = METRICS.build(dict(type='CrowdHumanMetric', ann_file=str(swapped), metric=['AP', 'MR']))
    for m in (vis, ref):
        m.process({}, samples)
    got, want = vis.compute_metrics(vis.results), ref.compute_metrics(ref.results)
    assert got['mAP'] == want['mAP'] and got['mMR'] == want['mMR'] and got['Recall'] < out['Recall']
    # a visible-body evaluation on an annotation whose line lacks 'vbox' names the file, line and field
    from mm_ext.core.datacheck import DataFormatError
    del recs[1]['gtboxes'][0]['vbox']
    ann.write_text('\n'.join(json.dumps(r) for r in recs) + '\n')
    bad = METRICS.build(dict(type='CrowdHumanRecallMetric', ann_file=str(ann), metric=['AP'], gt_box_key='vbox'))
    bad.process({}, samples)
    with pytest.raises(DataFormatError) as err:
        bad.compute_metrics(bad.results)
    assert f'{ann}:2:' in str(err.value) and 'gtboxes[0].vbox' in str(err.value)


@pytest.mark.parametrize('name', ['noh-nms_faster-rcnn_r50_fpn_8xb2-30e_crowdhuman.py',
                                  'greedy_faster-rcnn_r50_fpn_8xb2-30e_crowdhuman.py',
                                  'noh-nms-rpn-topk-all_faster-rcnn_r50_fpn_8xb2-30e_crowdhuman.py',
                                  'noh-nms_faster-rcnn_r50_fpn_8xb2-30e_crowdhuman-vbox.py'])
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
    assert cfg.model.test_cfg.rcnn.nms['type'] == ('noh_nms' if noh else 'nms')
    # like for like: every variant decodes without clipping (official)
    assert model.roi_head.bbox_head.bbox_coder.clip_border is False
    assert type(model.rpn_head).__name__ == ('NOHRPNHead' if 'topk-all' in name else 'RPNHead')
    if 'vbox' in name:
        assert cfg.test_evaluator.gt_box_key == 'vbox'
        assert cfg.train_dataloader.dataset.pipeline[1] == dict(type='NOHSelectBodyBox', box_key='vbox')


def test_crowddet_comparison_configs(repo_root):
    from mmengine.config import Config

    crowddet = Config.fromfile(str(repo_root / 'configs/mmdet/noh/crowddet-rcnn_r50_fpn_8xb2-30e_crowdhuman-lr0.02.py'))
    assert crowddet.optim_wrapper.optimizer.lr == 0.02 and crowddet.test_evaluator.type == 'CrowdHumanRecallMetric'
    rcnn = crowddet.model.test_cfg.rcnn
    for name in ('noh-nms', 'greedy'):
        cfg = Config.fromfile(str(repo_root / f'configs/mmdet/noh/{name}_faster-rcnn_r50_fpn_8xb2-30e_crowdhuman'
                                               '_crowddet-eval.py'))
        assert (cfg.model.test_cfg.rcnn.score_thr, cfg.model.test_cfg.rcnn.max_per_img) == \
            (rcnn.score_thr, rcnn.max_per_img) == (0.01, 500)


def test_convert_detectron2_checkpoint_loads_into_the_noh_detector(repo_root, tmp_path):
    """A state dict laid out as the official detectron2 NOH-NMS model (built from its
    module names and shapes) converts and loads strictly into the R50 NOH config."""
    import importlib.util

    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    init_default_scope('mmdet')
    d2 = {}

    def put(name, *shape):  # a distinct constant per tensor, stored as one number (small file, fast)
        d2[name] = torch.tensor([float(len(d2) + 1)]).expand(*shape)

    def conv_bn(prefix, cout, cin, k):
        put(f'{prefix}.weight', cout, cin, k, k)
        for b in ('weight', 'bias', 'running_mean', 'running_var'):
            put(f'{prefix}.norm.{b}', cout)

    conv_bn('backbone.bottom_up.stem.conv1', 64, 3, 7)
    cin = 64
    for stage, blocks in zip(range(2, 6), (3, 4, 6, 3)):
        mid = 64 * 2 ** (stage - 2)
        for b in range(blocks):
            p = f'backbone.bottom_up.res{stage}.{b}'
            conv_bn(f'{p}.conv1', mid, cin, 1)
            conv_bn(f'{p}.conv2', mid, mid, 3)
            conv_bn(f'{p}.conv3', 4 * mid, mid, 1)
            if b == 0:
                conv_bn(f'{p}.shortcut', 4 * mid, cin, 1)
            cin = 4 * mid
    for lvl, c in zip(range(2, 6), (256, 512, 1024, 2048)):
        conv_bn(f'backbone.fpn_lateral{lvl}', 256, c, 1)
        conv_bn(f'backbone.fpn_output{lvl}', 256, 256, 3)
    for name, cout, k in (('conv', 256, 3), ('objectness_logits', 3, 1), ('anchor_deltas', 12, 1)):
        put(f'proposal_generator.rpn_head.{name}.weight', cout, 256, k, k)
        put(f'proposal_generator.rpn_head.{name}.bias', cout)
    for head in ('box_head', 'overlap_head'):
        put(f'roi_heads.{head}.fc1.weight', 1024, 256 * 49)
        put(f'roi_heads.{head}.fc2.weight', 1024, 1024)
        put(f'roi_heads.{head}.fc1.bias', 1024)
        put(f'roi_heads.{head}.fc2.bias', 1024)
    for name, cout in (('box_predictor.cls_score', 2), ('box_predictor.bbox_pred', 4),
                       ('overlap_predictor.overlap_prob', 1), ('overlap_predictor.overlap_pred', 4)):
        put(f'roi_heads.{name}.weight', cout, 1024)
        put(f'roi_heads.{name}.bias', cout)
    put('pixel_mean', 3, 1, 1)
    src = tmp_path / 'model_final.pth'
    torch.save({'model': d2, 'iteration': 28125}, src)
    spec = importlib.util.spec_from_file_location('convert_noh', repo_root / 'tools/convert_noh_detectron2.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main([str(src), str(tmp_path / 'noh.pth')]) == 0
    converted = torch.load(tmp_path / 'noh.pth', weights_only=True)['state_dict']
    cfg = Config.fromfile(str(repo_root / 'configs/mmdet/noh/noh-nms_faster-rcnn_r50_fpn_8xb2-30e_crowdhuman.py'))
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    model.load_state_dict(converted, strict=True)
    sd = model.state_dict()
    for d2_key, key in (('backbone.bottom_up.res4.5.conv2.norm.running_var', 'backbone.layer3.5.bn2.running_var'),
                        ('backbone.bottom_up.res3.0.shortcut.weight', 'backbone.layer2.0.downsample.0.weight'),
                        ('backbone.fpn_output5.norm.weight', 'neck.fpn_convs.3.bn.weight'),
                        ('proposal_generator.rpn_head.objectness_logits.bias', 'rpn_head.rpn_cls.bias'),
                        ('roi_heads.overlap_predictor.overlap_pred.weight', 'roi_head.bbox_head.fc_noh_reg.weight')):
        assert torch.equal(sd[key], d2[d2_key]), key  # each tensor has its own constant
    d2['roi_heads.box_head.fc3.weight'] = torch.zeros(1)
    torch.save({'model': d2}, src)
    with pytest.raises(SystemExit, match='fc3'):
        tool.main([str(src), str(tmp_path / 'bad.pth')])


def test_select_body_box_uses_visible_boxes(dataset):
    from mmengine.registry import init_default_scope

    from mmdet.registry import DATASETS

    init_default_scope('mmdet')
    root = dataset('synth-crowd', num_train=4, num_val=2, suffix='tiny')
    ds = DATASETS.build(dict(type='CrowdHumanDataset', data_root=str(root), ann_file='annotation_train.odgt',
                             data_prefix=dict(img='Images/'),
                             pipeline=[dict(type='NOHSelectBodyBox', box_key='vbox'),
                                       dict(type='LoadAnnotations', with_bbox=True)]))
    recs = [json.loads(line) for line in (root / 'annotation_train.odgt').read_text().splitlines() if line]
    for i, rec in enumerate(recs):
        boxes = ds[i]['gt_bboxes'].tensor
        want = torch.tensor([[g['vbox'][0], g['vbox'][1], g['vbox'][0] + g['vbox'][2], g['vbox'][1] + g['vbox'][3]]
                             for g in rec['gtboxes']], dtype=torch.float32)
        assert torch.allclose(boxes, want)
        assert not torch.allclose(boxes, torch.tensor([[g['fbox'][0], g['fbox'][1], g['fbox'][0] + g['fbox'][2],
                                                        g['fbox'][1] + g['fbox'][3]] for g in rec['gtboxes']]))


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


def test_synth_crowd_vbox_config_selects_visible_boxes(repo_root):
    from mmengine.config import Config

    cfg = Config.fromfile(
        str(repo_root / 'configs/mmdet/noh/noh-nms_faster-rcnn_r18-w16_fpn_1xb4-400i_synth-crowd-vbox.py'))
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        names = [t['type'] for t in loader.dataset.pipeline]
        assert names.index('NOHSelectBodyBox') < names.index('LoadAnnotations')
    assert cfg.test_evaluator.gt_box_key == 'vbox' and cfg.test_evaluator.type == 'CrowdHumanRecallMetric'
