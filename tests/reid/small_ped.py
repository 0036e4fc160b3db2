"""The small synth-ped set that most re-ID engine tests share (fixture ``small_root`` in conftest.py)."""
SMALL = dict(num_train_ids=8, num_test_ids=6, cams_per_id=3, images_per_cam=2, num_distractors=4,
             height=32, width=16)
