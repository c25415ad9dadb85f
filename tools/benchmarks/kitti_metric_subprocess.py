"""Run a KITTI metric, or mmdet3d's rotated-IoU kernel, in a fresh interpreter: the way to run
mmdet3d's ``KittiMetric`` under ``NUMBA_ENABLE_CUDASIM=1``, which numba reads once, at import.

    python tools/benchmarks/kitti_metric_subprocess.py --metric KittiMetric \\
        --ann-file infos.pkl --samples samples.pkl --out out.json [--repeat N]

runs one metric on pickled inputs (:func:`mmdet3d_skd.testing.fake_kitti_results.dump_eval_set`)
and writes its results and timings as JSON. Used by ``tests/test_cpu_kitti_metric.py`` and
``bench_kitti_metric.py``.
"""
import argparse
import json
import os
import os.path as osp
import pickle
import subprocess
import sys
import tempfile
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

HERE = osp.dirname(osp.abspath(__file__))


def run_metric_subprocess(metric_type: str,
                          ann_file: str,
                          samples_file: str,
                          out_json: str,
                          cudasim: bool = False,
                          repeat: int = 1,
                          timeout: Optional[float] = None) -> dict:
    """Run :func:`~mmdet3d_skd.testing.fake_kitti_results.run_metric` in a fresh interpreter
    (this script).

    ``cudasim=True`` sets ``NUMBA_ENABLE_CUDASIM=1`` there, before numba is
    imported; otherwise the variable is removed. Returns the JSON it wrote:
    ``metrics`` (of the last run) and ``seconds`` (one per run).
    """
    env = dict(os.environ)
    env.pop('NUMBA_ENABLE_CUDASIM', None)
    if cudasim:
        env['NUMBA_ENABLE_CUDASIM'] = '1'
    cmd = [
        sys.executable, osp.join(HERE, 'kitti_metric_subprocess.py'), '--metric', metric_type,
        '--ann-file', ann_file, '--samples', samples_file, '--out', out_json, '--repeat',
        str(repeat)
    ]
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f'{" ".join(cmd)} failed (exit {proc.returncode}):'
                           f'\n{proc.stderr[-4000:]}')
    with open(out_json) as f:
        return json.load(f)


def rotate_iou_gpu_eval_cudasim(boxes: np.ndarray,
                                query_boxes: np.ndarray,
                                criteria: Sequence[int] = (-1, ),
                                timeout: Optional[float] = None
                                ) -> Tuple[Dict[int, np.ndarray],
                                           Dict[int, float]]:
    """mmdet3d's ``rotate_iou_gpu_eval`` in numba's CUDA simulator (subprocess:
    ``cudasim_rotate_iou.py``).

    Loads mmdet3d's ``rotate_iou.py`` by path, so the subprocess imports only
    numpy and numba. Returns ``{criterion: iou}`` and ``{criterion: seconds}``.
    """
    import importlib.util
    origin = importlib.util.find_spec('mmdet3d').origin
    path = os.path.join(
        os.path.dirname(origin), 'evaluation', 'functional', 'kitti_utils',
        'rotate_iou.py')
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM='1')
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, 'in.npz'), os.path.join(tmp, 'out.npz')
        np.savez(src, boxes=boxes, query=query_boxes,
                 criteria=np.asarray(criteria, dtype=np.int64))
        proc = subprocess.run(
            [sys.executable, osp.join(HERE, 'cudasim_rotate_iou.py'), path, src, dst],
            env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError('rotate_iou_gpu_eval under NUMBA_ENABLE_CUDASIM '
                               f'failed:\n{proc.stderr[-4000:]}')
        out = np.load(dst)
        return ({c: out[f'iou{c}'] for c in criteria},
                {c: float(out[f'sec{c}']) for c in criteria})


def _silence_warning_registry_race() -> None:
    """Under the simulator, numpy's division warnings add ``__warningregistry__``
    to the kernel module's globals, racing with the simulator's per-thread swap
    of those globals ("dictionary changed size during iteration"): create it
    beforehand."""
    from mmdet3d.evaluation.functional.kitti_utils import rotate_iou
    rotate_iou.__dict__.setdefault('__warningregistry__', {})


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description='Run a KITTI metric on pickled data samples, write JSON.')
    parser.add_argument('--metric', default='KittiMetric',
                        help='registered metric type, e.g. KittiMetric or '
                        'CPUKittiMetric')
    parser.add_argument('--ann-file', required=True)
    parser.add_argument('--samples', required=True,
                        help='pickled list of data-sample dicts')
    parser.add_argument('--out', required=True, help='JSON to write')
    parser.add_argument('--repeat', type=int, default=1,
                        help='evaluate this many times (fresh metric each)')
    args = parser.parse_args(argv)

    # registers CPUKittiMetric
    import mmdet3d_skd.evaluation.cpu_kitti_metric  # noqa: F401
    from mmdet3d_skd.testing.fake_kitti_results import run_metric

    if os.environ.get('NUMBA_ENABLE_CUDASIM') == '1':
        _silence_warning_registry_race()
    with open(args.samples, 'rb') as f:
        samples = pickle.load(f)
    seconds = []
    for _ in range(args.repeat):
        metrics, sec = run_metric(
            dict(type=args.metric, ann_file=args.ann_file), samples)
        seconds.append(sec)
    with open(args.out, 'w') as f:
        json.dump(
            dict(
                metric=args.metric,
                cudasim=os.environ.get('NUMBA_ENABLE_CUDASIM', '0'),
                metrics=metrics,
                seconds=seconds), f, indent=1)


if __name__ == '__main__':
    main()
