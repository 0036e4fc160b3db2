"""scene-bias-video, the three-view sampling pipeline, the retrieval metric, and a config smoke run."""
import json

import numpy as np
import pytest
import torch

pytest.importorskip('mmaction')
decord = pytest.importorskip('decord')

import mm_ext.mmaction  # noqa: F401,E402
from mmaction.registry import METRICS, TRANSFORMS  # noqa: E402


def test_scene_bias_video_files_and_bias(dataset):
    root = dataset('scene-bias-video')
    meta = json.loads((root / 'meta.json').read_text())
    for split, exp in (('train', 96), ('val', 32), ('probe', 32), ('test', 100)):
        lines = (root / f'{split}_list_videos.txt').read_text().split('\n')
        lines = [ln for ln in lines if ln.strip()]
        assert len(lines) == exp
        name, label = lines[0].split()
        assert (root / 'videos' / name).exists() and 0 <= int(label) < 4
    vr = decord.VideoReader(str(root / 'videos' / name))
    assert len(vr) == 16 and vr[0].shape == (64, 64, 3)
    clips = meta['clips']

    def agree(split):
        c = [v for k, v in clips.items() if k.startswith(split)]
        return np.mean([v['scene'] == v['label'] for v in c])

    assert agree('train') > 0.8  # scene predicts the label in training
    assert agree('test') < 0.5  # decorrelated (chance = 0.25)
    assert agree('probe') < 0.5
    assert meta['reversal_pair'] == [0, 1]


def test_scene_bias_reversal_pair_and_shared_foreground():
    from mm_ext.datagen.scene_bias_video import FG_COLOR, _render, _trajectory
    # class 1 is class 0 played backwards (same random draws)
    right = _trajectory(0, 16, 64, np.random.default_rng(5))
    left = _trajectory(1, 16, 64, np.random.default_rng(5))
    np.testing.assert_allclose(left, right[::-1])
    # the foreground is the same in every video: the disc pixels carry one colour
    frames = _render(np.zeros((64, 64, 3)), right[:2], 6.4, np.random.default_rng(0))
    cx, cy = right[0]
    assert tuple(frames[0][int(round(cy)), int(round(cx))]) == FG_COLOR


def test_three_view_pipeline_same_window_and_shifted_negative(dataset):
    root = dataset('scene-bias-video')
    pipe = [TRANSFORMS.build(t) for t in [
        dict(type='DecordInit'),
        dict(type='VideoSSLSampleFrames', clip_len=8, frame_interval=1, min_offset=2, seed=3),
        dict(type='DecordDecode'),
        dict(type='VideoSSLMultiView', transforms=[dict(type='FormatShape',
                                                        input_format='NCTHW')]),
        dict(type='PackActionInputs'),
    ]]
    results = dict(filename=str(root / 'videos' / 'train' / '00000.mp4'), label=0,
                   start_index=0, modality='RGB')
    inter = None
    for i, t in enumerate(pipe):
        results = t(results)
        if i == 1:
            inter = dict(results)
    starts = inter['ssl_window_starts']
    assert abs(int(starts[1]) - int(starts[0])) >= 2
    x = results['inputs']
    assert tuple(x.shape) == (3, 3, 8, 64, 64)
    assert torch.equal(x[0], x[1])  # anchor and positive: same frames (no augmentation here)
    vr = decord.VideoReader(str(root / 'videos' / 'train' / '00000.mp4'))
    neg = vr.get_batch(list(inter['frame_inds'][8:])).asnumpy()  # (T, H, W, C)
    assert np.array_equal(x[2].permute(1, 2, 3, 0).numpy(), neg)
    assert not torch.equal(x[0], x[2])


def test_retrieval_metric_hand_computed():
    metric = METRICS.build(dict(type='VideoRetrievalMetric', num_queries=2, topk=(1, 2)))
    feats = [[1., 0.], [0., 1.], [0.9, 0.1], [0.1, 0.9], [-1, 0.2]]  # 2 queries + 3 gallery
    labels = [0, 2, 0, 1, 2]
    metric.process(None, [dict(pred_feature=torch.tensor(f), gt_label=torch.tensor([lb]))
                          for f, lb in zip(feats, labels)])
    res = metric.compute_metrics(metric.results)
    # q0 -> nearest g0 (label 0): hit@1. q1 (label 2): cosines g1 .994 (label 1), g2 .196
    # (label 2), g0 .110 -> miss@1, hit@2
    assert res == {'R@1': 50.0, 'R@2': 100.0}


@pytest.mark.slow
def test_scene_bias_config_trains_one_epoch(dataset, repo_root, tmp_path):
    from mmengine.config import Config
    from mmengine.runner import Runner
    root = dataset('scene-bias-video')
    cfg = Config.fromfile(str(repo_root / 'configs/mmaction/scene_bias/'
                              'tbe_r3d-tiny_1xb8-8x1-20e_scene-bias-video.py'))
    cfg.work_dir = str(tmp_path)
    cfg.train_cfg.max_epochs = 1
    cfg.train_dataloader.dataset.ann_file = str(root / 'train_list_videos.txt')
    cfg.train_dataloader.dataset.data_prefix = dict(video=str(root / 'videos'))
    cfg.default_hooks.checkpoint.interval = 1
    assert cfg.model.queue_len <= 96 // 4  # a query never meets a stale key of its own video
    cfg.model.queue_len = 20  # so that the pointer position after 96 keys is informative
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 96 // 8
    assert runner.model.queue_ptr.item() == (96 // 8 * 8) % 20
    ckpt = tmp_path / 'epoch_1.pth'
    assert ckpt.exists()

    # retrieval: decorrelated test clips (queries) against train clips, from the checkpoint
    rcfg = Config.fromfile(str(repo_root / 'configs/mmaction/scene_bias/'
                               'retrieval_r3d-tiny_8x1_scene-bias-video.py'))
    rcfg.work_dir = str(tmp_path / 'retrieval')
    rcfg.load_from = str(ckpt)
    for sub, split in zip(rcfg.test_dataloader.dataset.datasets, ('test', 'train')):
        sub.ann_file = str(root / f'{split}_list_videos.txt')
        sub.data_prefix = dict(video=str(root / 'videos'))
    rcfg.test_evaluator.query_ann_file = str(root / 'test_list_videos.txt')
    metrics = Runner.from_cfg(rcfg).test()
    recalls = [metrics[f'retrieval/R@{k}'] for k in (1, 5, 10, 20, 50)]
    assert recalls == sorted(recalls) and 0 <= recalls[0] and recalls[-1] == 100.0

    # linear probe: the frozen backbone is exactly the pretrained query backbone
    lcfg = Config.fromfile(str(repo_root / 'configs/mmaction/scene_bias/'
                               'linear_r3d-tiny_1xb16-8x1-30e_scene-bias-video.py'))
    lcfg.work_dir = str(tmp_path / 'linear')
    lcfg.load_from = str(ckpt)
    lcfg.train_cfg.max_epochs = 1
    lcfg.train_cfg.val_begin = 1
    lcfg.train_cfg.val_interval = 1
    for dl, split in ((lcfg.train_dataloader, 'train'), (lcfg.val_dataloader, 'val'),
                      (lcfg.test_dataloader, 'test')):
        dl.dataset.ann_file = str(root / f'{split}_list_videos.txt')
        dl.dataset.data_prefix = dict(video=str(root / 'videos'))
    lrunner = Runner.from_cfg(lcfg)
    lrunner.train()
    pre = torch.load(str(ckpt), map_location='cpu', weights_only=False)['state_dict']
    for k, v in lrunner.model.backbone.state_dict().items():
        if 'num_batches_tracked' not in k:
            assert torch.equal(v, pre['backbone.' + k]), k
    acc = lrunner.test()
    assert 0 <= acc['acc/top1'] <= 1
