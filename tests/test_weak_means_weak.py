"""Weak means weak: training never sees 3D labels or LiDAR.

The synth config is trained twice under the same seed: on the generated info files, and on a
copy from which every 3D field is deleted. Identical losses, iteration for iteration, and
identical weights prove that nothing 3D reaches the losses. The copy keeps of each frame only
the image/depth file names, the image size and ``cam2img``: instances keep ``bbox`` and
``bbox_label`` (``bbox_3d``, ``bbox_label_3d``, ``center_2d``, ``depth``, ``alpha``,
``num_lidar_pts``, truncation/occlusion/difficulty... deleted), ``cam_instances`` is deleted,
``lidar_points.lidar_path`` points at a file that does not exist, the LiDAR extrinsics are
replaced by the identity, and its data root holds only ``training/image_2`` and
``training/depth_2`` (no ``label_2``, ``calib`` or ``velodyne``: the pipeline reads the info
file, never the KITTI label/calibration files). A negative control shows the comparison is not
vacuous: mmdet3d's own KittiDataset takes its 2D boxes from ``cam_instances`` (projections of
the 3D boxes) and gives other losses.
"""
import json
import pickle
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.runner import Runner

from tests.conftest import small_synth_cfg

# Logged values that do not depend on the data or the weights.
CLOCK_KEYS = ('time', 'data_time', 'eta', 'memory')
# Every key the stripped copy must lack, anywhere in the info file.
FORBIDDEN_KEYS = {'bbox_3d', 'bbox_label_3d', 'bbox_3d_isvalid', 'center_2d', 'depth', 'alpha',
                  'num_lidar_pts', 'truncated', 'occluded', 'difficulty', 'score', 'index',
                  'group_id', 'velocity', 'dimensions', 'location', 'rotation_y',
                  'cam_instances', 'Tr_velo_to_cam', 'Tr_imu_to_velo', 'plane', 'R0_rect'}
ITERS = 3


def strip_3d(info: dict) -> dict:
    """One frame of the info file with every 3D field deleted (see the module docstring)."""
    cam = info['images']['CAM2']
    cam2img = np.array(cam['cam2img'], dtype=np.float64)
    return dict(
        sample_idx=info['sample_idx'],
        images=dict(CAM2=dict(img_path=cam['img_path'], depth_path=cam['depth_path'],
                              height=cam['height'], width=cam['width'],
                              cam2img=cam['cam2img'],
                              # Det3DDataset reads these two; they carry no 3D label
                              lidar2cam=np.eye(4).tolist(), lidar2img=cam2img.tolist())),
        lidar_points=dict(lidar_path=f'no_such_dir/{info["sample_idx"]:06d}.bin',
                          num_pts_feats=4),
        instances=[dict(bbox=list(inst['bbox']), bbox_label=inst['bbox_label'])
                   for inst in info['instances']])


def all_keys(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from all_keys(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from all_keys(v)


@pytest.fixture(scope='module')
def weak_copy(synth_data, tmp_path_factory) -> Path:
    """The synthetic data set with nothing 3D left (see the module docstring)."""
    root = tmp_path_factory.mktemp('weak_copy') / 'synth_2d_only'
    (root / 'training').mkdir(parents=True)
    for sub in ('image_2', 'depth_2'):
        (root / 'training' / sub).symlink_to(synth_data / 'training' / sub)
    with open(synth_data / 'kitti_infos_train.pkl', 'rb') as f:
        infos = pickle.load(f)
    stripped = dict(metainfo=infos['metainfo'],
                    data_list=[strip_3d(i) for i in infos['data_list']])
    assert not FORBIDDEN_KEYS & set(all_keys(stripped['data_list']))
    with open(root / 'kitti_infos_train.pkl', 'wb') as f:
        pickle.dump(stripped, f)
    return root


def train(data_root, work_dir, max_iters=ITERS, dataset_type=None):
    """The synth config, ``max_iters`` iterations under seed 0, training only; returns the
    logged values per iteration (clock times dropped) and the final weights."""
    cfg = small_synth_cfg(data_root, work_dir, max_iters=max_iters, batch_size=2)
    cfg.randomness = dict(seed=0)  # CPU kernels are deterministic; deterministic=True on GPU
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    cfg.visualizer.name = cfg.experiment_name = f'weak_{uuid.uuid4().hex[:8]}'
    if dataset_type is not None:
        cfg.train_dataloader.dataset.type = dataset_type
        cfg.train_dataloader.dataset.pop('weak')
        # its empty-sample filter counts packed 3D labels, which this pipeline never packs
        cfg.train_dataloader.dataset.filter_empty_gt = False
    return train_cfg_logged(cfg, work_dir)


def train_cfg_logged(cfg, work_dir):
    """Train ``cfg``; the logged values per iteration (clock times dropped) and the final
    weights (also used by tests/test_own_data.py)."""
    runner = Runner.from_cfg(cfg)
    runner.train()
    rows = [json.loads(line) for f in Path(work_dir).glob('*/vis_data/scalars.json')
            for line in f.read_text().splitlines()]
    rows = [{k: v for k, v in r.items() if k not in CLOCK_KEYS} for r in rows]
    return rows, {k: v.clone() for k, v in runner.model.state_dict().items()}


@pytest.fixture(scope='module')
def normal_run(synth_data, tmp_path_factory):
    return train(synth_data, tmp_path_factory.mktemp('normal'))


def test_the_stripped_copy_has_2d_boxes_only(weak_copy, synth_data):
    with open(weak_copy / 'kitti_infos_train.pkl', 'rb') as f:
        infos = pickle.load(f)['data_list']
    with open(synth_data / 'kitti_infos_train.pkl', 'rb') as f:
        full = pickle.load(f)['data_list']
    assert {k for i in infos for inst in i['instances'] for k in inst} == {'bbox', 'bbox_label'}
    assert sum(len(i['instances']) for i in infos) == sum(len(i['instances']) for i in full)
    assert all('cam_instances' in i for i in full)  # the original had them: something to strip
    assert not (weak_copy / 'training' / 'label_2').exists()
    assert not (weak_copy / infos[0]['lidar_points']['lidar_path']).exists()


def test_training_without_any_3d_field_gives_identical_losses(normal_run, weak_copy, tmp_path):
    rows, weights = normal_run
    rows_2d, weights_2d = train(weak_copy, tmp_path / 'weak')
    assert [r['iter'] for r in rows] == list(range(1, ITERS + 1))
    assert 'student.loss_depth' in rows[0] and 'distill.loss_feature' in rows[0]
    # the GTM coefficients moved with the losses (which branch is damped depends on the pace)
    assert any(rows[-1][k] != 1.0 for k in ('k_teacher', 'k_student', 'k_distill'))
    for a, b in zip(rows, rows_2d):
        assert a == b, {k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)}
    assert weights.keys() == weights_2d.keys()
    for k, v in weights.items():
        assert torch.equal(v, weights_2d[k]), k


def test_negative_control_boxes_from_cam_instances_change_the_losses(normal_run, synth_data,
                                                                     tmp_path):
    """mmdet3d's KittiDataset trains on ``cam_instances`` (2D boxes projected from the 3D
    boxes): the first iteration's losses already differ, so the comparison above would see a
    3D-derived input."""
    rows, _ = normal_run
    leaked, _ = train(synth_data, tmp_path / 'leak', max_iters=1, dataset_type='KittiDataset')
    assert leaked[0]['iter'] == 1
    for key in ('student.loss_bbox2d', 'student.loss_giou2d', 'teacher.loss_align'):
        assert leaked[0][key] != pytest.approx(rows[0][key], rel=1e-4), key
