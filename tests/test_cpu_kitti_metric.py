"""CPUKittiMetric and rotate_iou_cpu_eval against mmdet3d's CUDA versions.

mmdet3d's CUDA kernel runs here in numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``,
read once when numba is imported), hence in a subprocess.
"""
import concurrent.futures
import json
import math
import sys
import types

import numpy as np
import pytest

from mmdet3d_skd.evaluation import cpu_kitti_metric
from mmdet3d_skd.evaluation.cpu_kitti_metric import (ROTATE_IOU_MODULE, CPUKittiMetric,
                                                     cpu_rotate_iou)
from mmdet3d_skd.evaluation.rotate_iou_cpu import PARALLEL_MIN_PAIRS, rotate_iou_cpu_eval
from mmdet3d_skd.testing.fake_kitti_results import (KITTI_CLASSES, dump_eval_set,
                                                    make_fake_kitti_eval_set, run_metric)
from tests.conftest import REPO

sys.path.insert(0, str(REPO / 'tools' / 'benchmarks'))
from kitti_metric_subprocess import rotate_iou_gpu_eval_cudasim  # noqa: E402
from kitti_metric_subprocess import run_metric_subprocess  # noqa: E402

SQRT2 = math.sqrt(2.0)


def _random_bev_boxes(rng, num, spread):
    return np.concatenate([
        rng.uniform(-spread, spread, (num, 2)),
        rng.uniform(0.5, 4.5, (num, 2)),
        rng.uniform(-np.pi, np.pi, (num, 1))
    ], 1)


# ----------------------------------------------------------------------------
# rotate_iou_cpu_eval on hand-checkable boxes
# ----------------------------------------------------------------------------
def test_rotate_iou_hand_cases():
    unit = [0, 0, 1, 1, 0]
    boxes = np.array([
        unit,
        [0.5, 0, 1, 1, 0],  # half overlap: I = 0.5, IoU = 1/3
        [0, 0, 1, 1, np.pi / 4],  # octagon: I = 2(sqrt2 - 1), IoU = sqrt2/2
        [5, 5, 1, 1, 0],  # disjoint
    ])
    iou = rotate_iou_cpu_eval(boxes, np.array([unit]))
    assert iou.dtype == np.float32 and iou.shape == (4, 1)
    np.testing.assert_allclose(iou[:, 0], [1, 1 / 3, SQRT2 / 2, 0], atol=1e-6)
    inter = rotate_iou_cpu_eval(boxes, np.array([unit]), criterion=2)
    np.testing.assert_allclose(inter[:, 0], [1, 0.5, 2 * (SQRT2 - 1), 0],
                               atol=1e-6)


def test_rotate_iou_criteria_follow_the_cuda_kernel():
    # box 4 x 2 containing a 1 x 1 query: I = 1. The kernel divides by the
    # query's area for criterion 0 and by the box's for criterion 1.
    box = np.array([[0, 0, 4, 2, 0.3]])
    query = np.array([[0.2, 0.1, 1, 1, -0.2]])
    expected = {-1: 1 / (8 + 1 - 1), 0: 1.0, 1: 1 / 8, 2: 1.0}
    for criterion, value in expected.items():
        iou = rotate_iou_cpu_eval(box, query, criterion)
        np.testing.assert_allclose(iou, [[value]], atol=1e-6)


def test_rotate_iou_parallel_path_equals_serial():
    rng = np.random.default_rng(5)
    boxes = _random_bev_boxes(rng, 80, 10.0)
    query = _random_bev_boxes(rng, 60, 10.0)
    assert len(boxes) * len(query) >= PARALLEL_MIN_PAIRS
    whole = rotate_iou_cpu_eval(boxes, query)  # prange over the boxes
    rows = np.concatenate([rotate_iou_cpu_eval(b[None], query) for b in boxes])
    assert (whole > 0).sum() > 100
    np.testing.assert_array_equal(whole, rows)


def test_rotate_iou_empty_and_bad_shape():
    assert rotate_iou_cpu_eval(np.zeros((0, 5)), np.zeros((3, 5))).shape == (0, 3)
    assert rotate_iou_cpu_eval(np.zeros((2, 5)), np.zeros((0, 5))).shape == (2, 0)
    with pytest.raises(ValueError, match='query_boxes must have shape'):
        rotate_iou_cpu_eval(np.zeros((2, 5)), np.zeros((2, 7)))


# ----------------------------------------------------------------------------
# rotate_iou_cpu_eval == mmdet3d's rotate_iou_gpu_eval (CUDA simulator)
# ----------------------------------------------------------------------------
def test_rotate_iou_matches_mmdet3d_kernel():
    rng = np.random.default_rng(0)
    square = [0.5, -1.0, 2.0, 2.0, 0.0]
    boxes = np.concatenate([
        _random_bev_boxes(rng, 30, 4.0),
        [square,  # identical to query 0 (exact at yaw 0)
         square[:4] + [np.pi / 4],  # query 0 turned by pi/4: IoU sqrt2/2
         [40, 40, 2, 2, 0.5]],  # disjoint from everything
    ])
    query = np.concatenate([[square], _random_bev_boxes(rng, 11, 4.0)])
    gpu, _ = rotate_iou_gpu_eval_cudasim(boxes, query, (-1, 0, 1, 2),
                                         timeout=300)

    for criterion in (-1, 0, 1, 2):
        ref = gpu[criterion]
        cpu = rotate_iou_cpu_eval(boxes, query, criterion)
        assert cpu.shape == ref.shape == (len(boxes), len(query))
        # 1e-4: float32 intersection points of nearly parallel edges are
        # ill-conditioned; the simulator computes some steps in float64
        np.testing.assert_allclose(cpu, ref, rtol=1e-5, atol=1e-4)
    cpu = rotate_iou_cpu_eval(boxes, query)
    assert (cpu[:30] > 0).mean() > 0.2  # the random boxes do overlap
    assert cpu[30, 0] == pytest.approx(1, abs=1e-6)
    assert cpu[31, 0] == pytest.approx(SQRT2 / 2, abs=1e-6)
    assert (cpu[32] == 0).all()


# ----------------------------------------------------------------------------
# the swap of mmdet3d's rotate_iou_gpu_eval
# ----------------------------------------------------------------------------
def test_cpu_rotate_iou_swaps_and_restores(monkeypatch):

    def sentinel(*args):
        raise AssertionError('the CUDA function must not run')

    fake = types.ModuleType(ROTATE_IOU_MODULE)
    fake.rotate_iou_gpu_eval = sentinel
    monkeypatch.setitem(sys.modules, ROTATE_IOU_MODULE, fake)
    with cpu_rotate_iou():
        assert fake.rotate_iou_gpu_eval is rotate_iou_cpu_eval
    assert fake.rotate_iou_gpu_eval is sentinel
    with pytest.raises(KeyError):
        with cpu_rotate_iou():
            raise KeyError('inside')
    assert fake.rotate_iou_gpu_eval is sentinel


def test_cpu_rotate_iou_stands_in_for_unimported_module(monkeypatch):
    monkeypatch.delitem(sys.modules, ROTATE_IOU_MODULE, raising=False)
    with cpu_rotate_iou():
        from mmdet3d.evaluation.functional.kitti_utils.rotate_iou import rotate_iou_gpu_eval
        assert rotate_iou_gpu_eval is rotate_iou_cpu_eval
    assert ROTATE_IOU_MODULE not in sys.modules


# ----------------------------------------------------------------------------
# CPUKittiMetric == KittiMetric
# ----------------------------------------------------------------------------
def test_cpu_kitti_metric_matches_kitti_metric(tmp_path):
    from mmdet3d.registry import METRICS

    infos, samples = make_fake_kitti_eval_set(20, seed=3)
    ann_file, samples_file = dump_eval_set(infos, samples, str(tmp_path))
    assert sum(len(i['instances']) for i in infos['data_list']) >= 60

    # mmdet3d's KittiMetric in the simulator (subprocess), meanwhile ours here
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(
            run_metric_subprocess,
            'KittiMetric',
            ann_file,
            samples_file,
            str(tmp_path / 'kitti_metric.json'),
            cudasim=True,
            timeout=600)
        metric_cfg = dict(type='CPUKittiMetric', ann_file=ann_file)
        assert isinstance(METRICS.build(metric_cfg), CPUKittiMetric)
        module_before = sys.modules.get(ROTATE_IOU_MODULE)
        ours, _ = run_metric(metric_cfg, samples, KITTI_CLASSES)
        assert sys.modules.get(ROTATE_IOU_MODULE) is module_before
        ref = future.result()['metrics']

    assert sorted(ours) == sorted(ref)
    for cls in KITTI_CLASSES:
        for kind in ('3D', 'BEV', '2D'):
            for diff in ('easy', 'moderate', 'hard'):
                key = (f'Kitti metric/pred_instances_3d/KITTI/'
                       f'{cls}_{kind}_AP40_{diff}_strict')
                assert key in ours, key
    assert any(k.startswith('Kitti metric/pred_instances/') for k in ours)
    bad = {k: (ours[k], ref[k]) for k in ref if abs(ours[k] - ref[k]) > 1e-4}
    assert not bad, json.dumps(bad, indent=1)
    # not a trivial agreement: noisy detections give AP strictly inside (0, 100)
    car_3d = [v for k, v in ours.items() if 'Car_3D_AP40' in k]
    assert all(0 < v < 100 for v in car_3d), car_3d
    assert cpu_kitti_metric._SWAP_LOCK.acquire(blocking=False)
    cpu_kitti_metric._SWAP_LOCK.release()
