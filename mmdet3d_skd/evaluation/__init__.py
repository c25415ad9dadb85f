"""Evaluation: mmdet3d's KITTI metric with rotated IoU on the CPU, and the metric of data
without 3D labels (projected-box 2D AP, depth-map agreement)."""
from .cpu_kitti_metric import CPUKittiMetric
from .weak_mono3d_metric import WeakMono3DMetric

__all__ = ['CPUKittiMetric', 'WeakMono3DMetric']
