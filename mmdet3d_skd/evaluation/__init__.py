"""Evaluation: mmdet3d's KITTI metric with rotated IoU on the CPU."""
from .cpu_kitti_metric import CPUKittiMetric

__all__ = ['CPUKittiMetric']
