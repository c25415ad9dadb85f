"""KittiMetric whose rotated IoUs run on the CPU (no CUDA needed).

mmdet3d 1.4.0's ``KittiMetric`` fails without CUDA (mmdet3d issue #2817): the BEV
and 3D overlaps of ``kitti_eval`` call the numba CUDA kernel ``rotate_iou_gpu_eval``.
``bev_box_overlap`` and ``d3_box_overlap`` import that function from
``mmdet3d.evaluation.functional.kitti_utils.rotate_iou`` at each call, so
``CPUKittiMetric`` swaps it for :func:`rotate_iou_cpu_eval` (the same kernel ported
to ``numba.njit``) while its own ``kitti_eval`` calls run, and restores it afterwards.
Everything else, hence every number and key, is ``KittiMetric``'s.
"""
import contextlib
import sys
import threading
import types
from typing import Dict, List, Optional

from mmdet3d.evaluation.metrics import KittiMetric
from mmdet3d.registry import METRICS
from .rotate_iou_cpu import rotate_iou_cpu_eval

__all__ = ['CPUKittiMetric', 'cpu_rotate_iou']

ROTATE_IOU_MODULE = 'mmdet3d.evaluation.functional.kitti_utils.rotate_iou'
_SWAP_LOCK = threading.RLock()


@contextlib.contextmanager
def cpu_rotate_iou():
    """Within the block, mmdet3d's KITTI evaluation uses the CPU rotated IoU.

    If mmdet3d's ``rotate_iou`` module is already imported, its
    ``rotate_iou_gpu_eval`` attribute is swapped. Otherwise a stand-in module
    holding only the CPU function takes its place in ``sys.modules``: importing
    the real one compiles its CUDA kernel eagerly, which is exactly what fails
    without CUDA. Either way the previous state comes back on exit. A re-entrant
    lock serialises the swap, so concurrent evaluations never restore each
    other's state half-way.
    """
    with _SWAP_LOCK:
        module = sys.modules.get(ROTATE_IOU_MODULE)
        if module is not None:
            original = module.rotate_iou_gpu_eval
            module.rotate_iou_gpu_eval = rotate_iou_cpu_eval
            try:
                yield
            finally:
                module.rotate_iou_gpu_eval = original
        else:
            stand_in = types.ModuleType(
                ROTATE_IOU_MODULE,
                'CPU stand-in for mmdet3d rotate_iou (mmdet3d_skd).')
            stand_in.rotate_iou_gpu_eval = rotate_iou_cpu_eval
            sys.modules[ROTATE_IOU_MODULE] = stand_in
            try:
                yield
            finally:
                if sys.modules.get(ROTATE_IOU_MODULE) is stand_in:
                    del sys.modules[ROTATE_IOU_MODULE]


@METRICS.register_module()
class CPUKittiMetric(KittiMetric):
    """``KittiMetric`` (same arguments, same output keys and numbers) that
    computes the BEV/3D rotated IoUs on the CPU, for machines without CUDA.

    Only ``kitti_evaluate`` differs: it runs ``KittiMetric.kitti_evaluate``
    inside :func:`cpu_rotate_iou`.
    """

    def kitti_evaluate(self,
                       results_dict: dict,
                       gt_annos: List[dict],
                       metric: Optional[str] = None,
                       classes: Optional[List[str]] = None,
                       logger=None) -> Dict[str, float]:
        with cpu_rotate_iou():
            return super().kitti_evaluate(
                results_dict,
                gt_annos,
                metric=metric,
                classes=classes,
                logger=logger)
