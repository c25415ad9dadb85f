"""The embedded synthetic KITTI-format world: exact 3D truth, no download.

``generate(out_dir, num_train, num_val, seed)`` writes a KITTI-layout data set (``training/
image_2, calib, label_2, depth_2``, ``ImageSets``) and mmdet3d v2 info files
(``kitti_infos_{train,val,trainval}.pkl``) that mmdet3d's ``KittiDataset`` and
``KittiMetric`` read unchanged; KITTI's files through
:mod:`mmdet3d_skd.datasets.kitti_format`. See docs/synthetic_data.md.
"""
from .depth_noise import apply_depth_noise
from .generator import (Annotation, Frame, WorldMismatchError, compute_annotations, generate,
                        make_frame, write_splits)
from .render import RenderResult, render_scene
from .world import (CLASS_SIZE_PRIORS, CLASS_SIZE_STDS, KITTI_CLASSES, SYNTH_CLASSES,
                    DepthNoiseConfig, Scene, SceneObject, WorldConfig, sample_scene)

__all__ = [
    'generate', 'make_frame', 'write_splits', 'compute_annotations', 'Annotation', 'Frame',
    'WorldMismatchError', 'render_scene', 'RenderResult', 'sample_scene', 'Scene',
    'SceneObject', 'WorldConfig', 'DepthNoiseConfig', 'CLASS_SIZE_PRIORS', 'CLASS_SIZE_STDS',
    'KITTI_CLASSES', 'SYNTH_CLASSES', 'apply_depth_noise'
]
