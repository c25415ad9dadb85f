"""Datasets and transforms: the weak KITTI dataset, the weak dataset of a user's own classes
(from a COCO json, ``coco_convert``), depth loading and depth-aware augmentation."""
from .transforms import (DepthAffineResize, DepthRandomFlip3D, LoadDepthMap, PackSKDInputs,
                         RandomScaleCrop)
from .weak_kitti_dataset import WeakKittiDataset
from .weak_mono3d_dataset import WeakMono3DDataset

__all__ = ['DepthAffineResize', 'DepthRandomFlip3D', 'LoadDepthMap', 'PackSKDInputs',
           'RandomScaleCrop', 'WeakKittiDataset', 'WeakMono3DDataset']
