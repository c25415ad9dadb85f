"""mmdet3d's ``rotate_iou_gpu_eval`` in numba's CUDA simulator, timed per criterion.

    NUMBA_ENABLE_CUDASIM=1 python cudasim_rotate_iou.py ROTATE_IOU_PY IN.npz OUT.npz

``ROTATE_IOU_PY`` is mmdet3d's ``rotate_iou.py``, loaded by path (no mmdet3d, no torch);
``IN.npz`` holds ``boxes``, ``query`` and ``criteria``; ``OUT.npz`` gets ``iou<c>`` and
``sec<c>`` per criterion. Run by :func:`kitti_metric_subprocess.rotate_iou_gpu_eval_cudasim`.
"""
import importlib.util
import sys
import time

import numpy as np


def main(rotate_iou_py: str, src: str, dst: str) -> None:
    spec = importlib.util.spec_from_file_location('mmdet3d_rotate_iou', rotate_iou_py)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    # see kitti_metric_subprocess._silence_warning_registry_race
    mod.__dict__.setdefault('__warningregistry__', {})
    data = np.load(src)
    out = {}
    for c in data['criteria']:
        tic = time.perf_counter()
        out[f'iou{c}'] = mod.rotate_iou_gpu_eval(data['boxes'], data['query'], int(c))
        out[f'sec{c}'] = time.perf_counter() - tic
    np.savez(dst, **out)


if __name__ == '__main__':
    main(*sys.argv[1:4])
