"""One training iteration and one prediction of the NOH-NMS detector through the mmengine Runner."""
from pathlib import Path

import pytest
import torch

pytest.importorskip('mmcv.ops')
pytest.importorskip('mmdet')

REPO = Path(__file__).resolve().parents[2]
CFG = REPO / 'configs/mmdet/noh/noh-nms_faster-rcnn_r18-w16_fpn_1xb4-400i_synth-crowd.py'


@pytest.fixture
def one_thread():
    """Small ops on a shared 2-core machine: one intra-op thread avoids OpenMP contention."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.slow
def test_noh_runner_one_iteration_then_predict(dataset, tmp_path, one_thread):
    import mm_ext  # noqa: F401  compat fixes
    from mmengine.config import Config
    from mmengine.runner import Runner

    root = dataset('synth-crowd', num_train=4, num_val=2, suffix='tiny')
    cfg = Config.fromfile(str(CFG))
    cfg.work_dir = str(tmp_path / 'wd')
    cfg.train_dataloader.dataset.data_root = str(root)
    cfg.train_dataloader.batch_size = 2
    cfg.test_dataloader.dataset.data_root = str(root)
    cfg.test_evaluator.ann_file = str(root / 'annotation_val.odgt')
    cfg.train_cfg.max_iters = 1
    cfg.train_cfg.val_interval = 1
    cfg.default_hooks.checkpoint.interval = 1
    cfg.param_scheduler = []
    runner = Runner.from_cfg(cfg)
    before = {k: v.clone() for k, v in runner.model.state_dict().items() if 'noh_fcs' in k}
    runner.train()
    after = runner.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), 'NOH branch did not train'
    assert (Path(cfg.work_dir) / 'iter_1.pth').is_file()
    # the message hub holds the last losses: both NOH losses were computed and finite
    scalars = runner.message_hub.log_scalars
    for key in ('train/loss_noh_score', 'train/loss_noh_bbox', 'train/loss_cls'):
        assert key in scalars and torch.isfinite(torch.tensor(scalars[key].current())), key

    # one prediction with each NMS on the same model
    batch = next(iter(runner.build_dataloader(cfg.test_dataloader)))
    model = runner.model.eval()
    outs = {}
    for method in ('noh', 'greedy'):
        model.roi_head.test_cfg.nms['type'] = method
        with torch.no_grad():
            outs[method] = model.test_step(batch)
    # outside no_grad (the outputs require grad): the same predictions
    model.roi_head.test_cfg.nms['type'] = 'noh'
    with_grad = model.test_step(batch)
    for a, b in zip(with_grad, outs['noh']):
        assert torch.equal(a.pred_instances.bboxes.detach(), b.pred_instances.bboxes)
        assert torch.equal(a.pred_instances.scores.detach(), b.pred_instances.scores)
    for method, samples in outs.items():
        assert len(samples) == len(batch['data_samples'])
        pred = samples[0].pred_instances
        assert pred.bboxes.shape[1] == 4 and pred.scores.shape == pred.labels.shape
        assert pred.noh_bboxes.shape == pred.bboxes.shape, method
    # evaluation through the test loop reports the paper's metrics
    model.roi_head.test_cfg.nms['type'] = 'noh'
    metrics = runner.test()
    assert {'crowd_human/mAP', 'crowd_human/mMR', 'crowd_human/Recall'} <= set(metrics)
