"""Fake KITTI validation sets and noisy detections, for checking KITTI metrics.

Shared by ``tests/test_cpu_kitti_metric.py`` and
``tools/benchmarks/bench_kitti_metric.py``:

* :func:`make_fake_kitti_eval_set` draws random but plausible ground truth (Cars,
  Pedestrians, Cyclists, a few Vans and DontCare regions, 5-50 m ahead, 2D boxes
  from projecting the 3D boxes with a KITTI ``P2``, KITTI difficulty from the 2D
  height, occlusion and truncation) as an mmdet3d v2 info dict, and detections as
  the runner hands them to a metric (``Det3DDataSample.to_dict()``): noisy copies
  of the ground truth (centre, size and yaw jitter; never an exact copy, which
  mmdet3d's rotated IoU may score 0, issues #838/#2839), misses and false
  positives.
* :func:`run_metric` feeds them through a registered metric as the runner does.
* ``tools/benchmarks/kitti_metric_subprocess.py`` runs one metric on pickled inputs
  (:func:`dump_eval_set`) in a fresh interpreter: the way to run mmdet3d's ``KittiMetric``
  under ``NUMBA_ENABLE_CUDASIM=1``, which numba reads once, at import.
"""
import copy
import os
import pickle
import time
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..datasets.kitti_format import KITTI_SIZE_PRIORS, kitti_difficulty

__all__ = ['KITTI_CLASSES', 'make_fake_kitti_eval_set', 'dump_eval_set', 'run_metric']

KITTI_CLASSES = ('Pedestrian', 'Cyclist', 'Car')
# mmdet3d's KITTI info files (v2) label map
KITTI_CATEGORIES = {
    'Pedestrian': 0,
    'Cyclist': 1,
    'Car': 2,
    'Van': 3,
    'Truck': 4,
    'Person_sitting': 5,
    'Tram': 6,
    'Misc': 7,
    'DontCare': -1
}
IMG_W, IMG_H = 1242, 375
# KITTI P2 (rectified colour camera 2), with its translation column
P2 = np.array([[721.5377, 0.0, 609.5593, 44.85728],
               [0.0, 721.5377, 172.854, 0.2163791],
               [0.0, 0.0, 1.0, 0.002745884], [0.0, 0.0, 0.0, 1.0]])
# velodyne -> rectified camera (x fwd, y left, z up -> x right, y down, z fwd)
LIDAR2CAM = np.array([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, -0.08],
                      [1.0, 0.0, 0.0, -0.27], [0.0, 0.0, 0.0, 1.0]])
# mean (l, h, w) in metres and their spread (std, relative)
_DIMS = {name: (mean, 0.08)
         for name, mean in dict(KITTI_SIZE_PRIORS, Van=(5.08, 2.21, 1.90)).items()}
_CLASS_PROBS = (('Car', 0.58), ('Pedestrian', 0.22), ('Cyclist', 0.12),
                ('Van', 0.08))


def _project(boxes_3d: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(N, 7) camera boxes -> unclipped 2D boxes (N, 4) and projected gravity
    centres (N, 2), as KittiMetric projects predictions (corners through P2)."""
    import torch

    from mmdet3d.structures import CameraInstance3DBoxes, points_cam2img
    boxes = CameraInstance3DBoxes(torch.as_tensor(boxes_3d, dtype=torch.float32))
    p2 = torch.as_tensor(P2, dtype=torch.float32)
    uv = points_cam2img(boxes.corners, p2)
    box2d = torch.cat([uv.min(1)[0], uv.max(1)[0]], 1)
    centre = points_cam2img(boxes.gravity_center, p2)
    return box2d.numpy().astype(np.float64), centre.numpy().astype(np.float64)


def _draw_objects(rng: np.random.Generator, num: int) -> List[dict]:
    """Objects of one frame, visible in the image and apart from each other."""
    names = [c for c, _ in _CLASS_PROBS]
    probs = np.array([p for _, p in _CLASS_PROBS])
    objects = []
    tries = 0
    while len(objects) < num and tries < 50 * num:
        tries += 1
        name = names[rng.choice(len(names), p=probs)]
        mean, spread = _DIMS[name]
        lhw = np.asarray(mean) * (1 + spread * rng.standard_normal(3))
        z = rng.uniform(5.0, 50.0)
        x = z * rng.uniform(-0.75, 0.75) + rng.uniform(-2, 2)
        y = 1.65 + rng.normal(0, 0.08)  # bottom centre on the road
        ry = rng.uniform(-np.pi, np.pi)
        box = np.array([x, y, z, *lhw, ry])
        if any(np.hypot(x - o['box'][0], z - o['box'][2]) < 1.2 *
               (max(lhw[0], lhw[2]) + max(o['box'][3], o['box'][5]))
               for o in objects):
            continue
        (raw, ), (centre, ) = _project(box[None])
        clipped = np.array([
            max(raw[0], 0), max(raw[1], 0),
            min(raw[2], IMG_W), min(raw[3], IMG_H)
        ])
        vis = max(clipped[2] - clipped[0], 0) * max(clipped[3] - clipped[1], 0)
        full = (raw[2] - raw[0]) * (raw[3] - raw[1])
        truncated = 1.0 - vis / full
        if truncated > 0.6:
            continue
        truncated = 0.0 if truncated < 0.02 else round(float(truncated), 2)
        occluded = int(rng.choice(3, p=(0.6, 0.28, 0.12)))
        objects.append(
            dict(
                name=name,
                box=box,
                bbox=clipped,
                centre=centre,
                truncated=truncated,
                occluded=occluded))
    return objects


def _instance(index: int, obj: dict) -> dict:
    """One ``instances`` entry in mmdet3d's v2 KITTI info format."""
    x, _, z = obj['box'][:3]
    alpha = (obj['box'][6] - np.arctan2(x, z) + np.pi) % (2 * np.pi) - np.pi
    bbox = [round(float(v), 2) for v in obj['bbox']]
    label = KITTI_CATEGORIES[obj['name']]
    return dict(
        bbox=bbox,
        bbox_label=label,
        bbox_3d=[round(float(v), 2) for v in obj['box']],
        bbox_label_3d=label,
        depth=float(z),
        center_2d=[float(v) for v in obj['centre']],
        num_lidar_pts=int(4e4 / z**2 * obj['box'][3] * obj['box'][4]),
        difficulty=int(kitti_difficulty(bbox[3] - bbox[1], obj['occluded'],
                                        obj['truncated'])),
        truncated=obj['truncated'],
        occluded=obj['occluded'],
        alpha=round(float(alpha), 2),
        score=0.0,
        index=index,
        group_id=index)


def _dont_care(rng: np.random.Generator, index: int) -> dict:
    """A DontCare region: 2D box only, KITTI's placeholder 3D values."""
    u, v = rng.uniform(200, IMG_W - 200), rng.uniform(150, 200)
    w, h = rng.uniform(15, 60), rng.uniform(10, 30)
    bbox = [round(u, 2), round(v, 2), round(u + w, 2), round(v + h, 2)]
    return dict(
        bbox=bbox,
        bbox_label=-1,
        bbox_3d=[-1000.0, -1000.0, -1000.0, -1.0, -1.0, -1.0, -10.0],
        bbox_label_3d=-1,
        depth=-1000.0,
        center_2d=[u + w / 2, v + h / 2],
        num_lidar_pts=-1,
        difficulty=-1,
        truncated=-1.0,
        occluded=-1,
        alpha=-10.0,
        score=0.0,
        index=-1,
        group_id=index)


def _frame_info(sample_idx: int, instances: List[dict]) -> dict:
    """A ``data_list`` entry with the keys of mmdet3d's v2 KITTI infos."""
    cam2img = P2.tolist()
    lidar2img = (P2 @ LIDAR2CAM).tolist()
    cams = {
        f'CAM{i}': dict(cam2img=cam2img, lidar2img=lidar2img)
        for i in (0, 1, 3)
    }
    cams['CAM2'] = dict(
        img_path=f'{sample_idx:06d}.png',
        height=IMG_H,
        width=IMG_W,
        cam2img=cam2img,
        lidar2img=lidar2img,
        lidar2cam=LIDAR2CAM.tolist())
    cams['R0_rect'] = np.eye(4).tolist()
    return dict(
        sample_idx=sample_idx,
        images=cams,
        lidar_points=dict(
            num_pts_feats=4,
            lidar_path=f'{sample_idx:06d}.bin',
            Tr_velo_to_cam=LIDAR2CAM.tolist(),
            Tr_imu_to_velo=np.eye(4).tolist()),
        instances=instances)


def _detections(rng: np.random.Generator, objects: List[dict],
                num_fp: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noisy copies of the objects (some missed) plus ``num_fp`` false
    positives: (M, 7) boxes, (M,) scores, (M,) labels into KITTI_CLASSES."""
    boxes, scores, labels = [], [], []
    for obj in objects:
        name = 'Car' if obj['name'] == 'Van' else obj['name']
        if rng.random() < (0.5 if obj['name'] == 'Van' else 0.15):
            continue  # missed
        box = obj['box'].copy()
        z = box[2]
        box[[0, 2]] += rng.normal(0, 0.02 + 0.008 * z, 2)  # cm .. ~0.5 m
        box[1] += rng.normal(0, 0.05)
        box[3:6] *= 1 + rng.normal(0, 0.04, 3)
        box[6] += np.deg2rad(rng.normal(0, 4))
        boxes.append(box)
        scores.append(rng.uniform(0.3, 1.0))
        labels.append(KITTI_CLASSES.index(name))
    for obj in _draw_objects(rng, num_fp):
        boxes.append(obj['box'])
        scores.append(rng.uniform(0.05, 0.5))
        labels.append(int(rng.integers(len(KITTI_CLASSES))))
    if not boxes:
        return np.zeros((0, 7)), np.zeros(0), np.zeros(0, dtype=np.int64)
    return (np.stack(boxes), np.array(scores), np.array(labels,
                                                        dtype=np.int64))


def make_fake_kitti_eval_set(num_frames: int,
                             seed: int = 0,
                             objects_per_frame: Tuple[int, int] = (2, 8),
                             with_2d: bool = True) -> Tuple[dict, List[dict]]:
    """A fake KITTI val set and detections for it.

    Args:
        num_frames: number of frames (``sample_idx`` 0 .. num_frames - 1).
        seed: seed of the generator; the same seed gives the same set.
        objects_per_frame: inclusive range of objects drawn per frame.
        with_2d: also give 2D detections (``pred_instances``), which
            KittiMetric then evaluates as ``pred_instances/...``.

    Returns:
        (infos, data_samples): ``infos`` as mmdet3d's KITTI info pkl (dict with
        ``metainfo`` and ``data_list``); ``data_samples`` one dict per frame as
        ``Det3DDataSample.to_dict()``, what ``metric.process`` receives.
    """
    import torch
    from mmengine.structures import InstanceData

    from mmdet3d.structures import CameraInstance3DBoxes, Det3DDataSample

    rng = np.random.default_rng(seed)
    data_list, samples = [], []
    for idx in range(num_frames):
        objects = _draw_objects(rng, int(rng.integers(*objects_per_frame, endpoint=True)))
        instances = [_instance(i, o) for i, o in enumerate(objects)]
        if rng.random() < 0.3:
            instances.append(_dont_care(rng, len(instances)))
        data_list.append(_frame_info(idx, instances))

        boxes, scores, labels = _detections(rng, objects,
                                            int(rng.random() < 0.6))
        sample = Det3DDataSample(metainfo=dict(sample_idx=idx))
        sample.pred_instances_3d = InstanceData(
            bboxes_3d=CameraInstance3DBoxes(
                torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 7)),
            scores_3d=torch.as_tensor(scores, dtype=torch.float32),
            labels_3d=torch.as_tensor(labels, dtype=torch.int64))
        pred_2d = InstanceData()
        if with_2d:
            if len(boxes):
                raw, _ = _project(boxes)
                box2d = raw + rng.normal(0, 2.0, raw.shape)
                box2d[:, 0::2] = box2d[:, 0::2].clip(0, IMG_W)
                box2d[:, 1::2] = box2d[:, 1::2].clip(0, IMG_H)
            else:
                box2d = np.zeros((0, 4))
            pred_2d.bboxes = torch.as_tensor(box2d, dtype=torch.float32)
            pred_2d.scores = torch.as_tensor(scores, dtype=torch.float32)
            pred_2d.labels = torch.as_tensor(labels, dtype=torch.int64)
        sample.pred_instances = pred_2d
        samples.append(sample.to_dict())
    infos = dict(
        metainfo=dict(
            categories=dict(KITTI_CATEGORIES),
            dataset='kitti',
            info_version='1.1'),
        data_list=data_list)
    return infos, samples


def dump_eval_set(infos: dict, samples: List[dict], out_dir: str,
                  ) -> Tuple[str, str]:
    """Write the info pkl (as mmdet3d's) and the pickled data samples; returns
    their paths."""
    os.makedirs(out_dir, exist_ok=True)
    ann_file = os.path.join(out_dir, 'kitti_infos_val.pkl')
    samples_file = os.path.join(out_dir, 'data_samples.pkl')
    with open(ann_file, 'wb') as f:
        pickle.dump(infos, f)
    with open(samples_file, 'wb') as f:
        pickle.dump(samples, f)
    return ann_file, samples_file


def run_metric(metric_cfg: dict,
               samples: Sequence[dict],
               classes: Sequence[str] = KITTI_CLASSES,
               batch_size: int = 4) -> Tuple[Dict[str, float], float]:
    """Build ``metric_cfg`` from mmdet3d's METRICS, feed it ``samples`` in
    batches as the runner's evaluator does, evaluate. The samples are
    deep-copied first (KittiMetric edits boxes in place).

    Returns:
        (metrics, seconds): the ``evaluate`` result and the time it took.
    """
    import mmdet3d.evaluation.metrics  # noqa: F401 (registers KittiMetric)
    from mmdet3d.registry import METRICS

    samples = copy.deepcopy(list(samples))
    metric = METRICS.build(metric_cfg)
    metric.dataset_meta = dict(classes=list(classes))
    for start in range(0, len(samples), batch_size):
        metric.process({}, samples[start:start + batch_size])
    tic = time.perf_counter()
    results = metric.evaluate(len(samples))
    return results, time.perf_counter() - tic
