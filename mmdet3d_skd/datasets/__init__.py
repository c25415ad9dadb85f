"""Datasets and transforms: the weak KITTI dataset, depth loading and depth-aware augmentation."""
from .transforms import (DepthAffineResize, DepthRandomFlip3D, LoadDepthMap,
                         PackSKDInputs, RandomScaleCrop)
from .weak_kitti_dataset import WeakKittiDataset

__all__ = ['DepthAffineResize', 'DepthRandomFlip3D', 'LoadDepthMap', 'PackSKDInputs',
           'RandomScaleCrop', 'WeakKittiDataset']
