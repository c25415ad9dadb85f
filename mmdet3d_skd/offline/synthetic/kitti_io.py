"""mmdet3d v2 info files of the synthetic world (its KITTI files are written and read with
:mod:`mmdet3d_skd.datasets.kitti_format`).

The info files are what mmdet3d's own pipeline (``tools/create_data.py kitti`` then
``tools/dataset_converters/update_infos_to_v2.py``) writes for KITTI; those scripts are not
importable from the installed package, so the few lines that turn KITTI labels and
calibration into an info entry are mirrored here (``read_label`` mirrors
``kitti_data_utils.get_label_anno``, ``add_difficulty`` its ``add_difficulty_to_annos``,
``frame_info`` ``update_kitti_infos``). The mono3d ``cam_instances`` come from mmdet3d's own
``get_kitti_style_2d_boxes``.
"""
import copy
from typing import Dict, List, Optional, Sequence

import numpy as np

from ...datasets import kitti_format
from .world import KITTI_CLASSES


# ----------------------------------------------------------------------------------------
# KITTI files as mmdet3d's converter holds them
# ----------------------------------------------------------------------------------------
def read_calib(path: str) -> Dict[str, np.ndarray]:
    """A KITTI calib file with all seven matrices, each 4x4 (mmdet3d's ``extend_matrix``)."""
    return kitti_format.calib_4x4(kitti_format.read_calib(path, required=kitti_format.CALIB_KEYS))


def read_label(path: str) -> Dict[str, np.ndarray]:
    """KITTI label file -> annotation arrays (dimensions converted to l, h, w), as mmdet3d's
    ``get_label_anno``: ``index`` counts the non-DontCare objects (DontCare: -1)."""
    objects = kitti_format.read_label(path)
    num_gt = len(objects)
    num_objects = len([o for o in objects if o['type'] != 'DontCare'])
    annos = {
        'name': np.array([o['type'] for o in objects]),
        'truncated': np.array([o['truncated'] for o in objects]),
        'occluded': np.array([o['occluded'] for o in objects]),
        'alpha': np.array([o['alpha'] for o in objects]),
        'bbox': np.array([o['bbox'] for o in objects]).reshape(-1, 4),
        'dimensions': np.array([o['dimensions'] for o in objects]).reshape(-1, 3)[:, [2, 0, 1]],
        'location': np.array([o['location'] for o in objects]).reshape(-1, 3),
        'rotation_y': np.array([o['rotation_y'] for o in objects]).reshape(-1),
    }
    if objects and 'score' in objects[0]:
        annos['score'] = np.array([o['score'] for o in objects])
    else:
        annos['score'] = np.zeros((num_gt, ))
    annos['index'] = np.array(list(range(num_objects)) + [-1] * (num_gt - num_objects),
                              dtype=np.int32)
    annos['group_ids'] = np.arange(num_gt, dtype=np.int32)
    return annos


def add_difficulty(annos: Dict[str, np.ndarray]) -> np.ndarray:
    """``annos['difficulty']`` (:func:`~mmdet3d_skd.datasets.kitti_format.kitti_difficulty`:
    0 easy, 1 moderate, 2 hard, else -1), as mmdet3d's converter computes it."""
    height = annos['bbox'][:, 3] - annos['bbox'][:, 1]
    annos['difficulty'] = kitti_format.kitti_difficulty(height, annos['occluded'],
                                                        annos['truncated'])
    return annos['difficulty']


# ----------------------------------------------------------------------------------------
# mmdet3d v2 info entries
# ----------------------------------------------------------------------------------------
def metainfo() -> dict:
    """``metainfo`` of mmdet3d's KITTI info files (class ids of ``KittiDataset``)."""
    categories = {k: i for i, k in enumerate(KITTI_CLASSES)}
    categories['DontCare'] = -1
    return dict(categories=categories, dataset='kitti', info_version='1.1')


def frame_info(sample_idx: int, calib: Dict[str, np.ndarray], annos: Dict[str, np.ndarray],
               num_points: Sequence[int], width: int, height: int,
               depth_name: Optional[str] = None) -> dict:
    """One ``data_list`` entry, as ``update_kitti_infos`` writes it, plus
    ``images['CAM2']['depth_path']`` (file name in ``training/depth_2``).

    ``calib``: 4x4 matrices (see :func:`read_calib`); ``annos``: from :func:`read_label`;
    ``num_points``: per label line, written as ``num_lidar_pts`` (the synthetic world has no
    LiDAR: the object's visible pixel count; -1 for DontCare).
    """
    from mmdet3d.datasets.convert_utils import get_kitti_style_2d_boxes
    from mmdet3d.structures import points_cam2img

    name = f'{sample_idx:06d}'
    rect = calib['R0_rect'].astype(np.float32)
    trv2c = calib['Tr_velo_to_cam'].astype(np.float32)
    lidar2cam = rect @ trv2c
    images = {}
    for i in range(4):
        images[f'CAM{i}'] = dict(cam2img=calib[f'P{i}'].tolist(),
                                 lidar2img=(calib[f'P{i}'] @ lidar2cam).tolist())
    cam2 = images['CAM2']
    cam2.update(img_path=f'{name}.png', height=int(height), width=int(width),
                lidar2cam=lidar2cam.tolist())
    if depth_name is not None:
        cam2['depth_path'] = depth_name
    images['R0_rect'] = rect.tolist()
    lidar_points = dict(num_pts_feats=4, lidar_path=f'{name}.bin',
                        Tr_velo_to_cam=trv2c.tolist(),
                        Tr_imu_to_velo=calib['Tr_imu_to_velo'].astype(np.float32).tolist())
    annos = copy.deepcopy(annos)
    annos['num_points_in_gt'] = np.asarray(num_points, dtype=np.int32)
    if len(annos['num_points_in_gt']) != len(annos['name']):
        raise ValueError(f'frame {name}: {len(annos["name"])} label lines but '
                         f'{len(annos["num_points_in_gt"])} point counts')
    add_difficulty(annos)
    cam2img = calib['P2']
    instances = []
    for i in range(len(annos['name'])):
        label = (KITTI_CLASSES.index(annos['name'][i])
                 if annos['name'][i] in KITTI_CLASSES else -1)
        loc = annos['location'][i]
        dims = annos['dimensions'][i]
        center_3d = loc + dims * (np.array([0.5, 0.5, 0.5]) - np.array([0.5, 1.0, 0.5]))
        c2d = points_cam2img(center_3d.reshape(1, 3), cam2img, with_depth=True)
        c2d = np.asarray(c2d).squeeze().tolist()
        instances.append(dict(
            bbox=annos['bbox'][i].tolist(),
            bbox_label=label,
            bbox_3d=np.concatenate([loc, dims, annos['rotation_y'][i:i + 1]]).tolist(),
            bbox_label_3d=label,
            depth=c2d[2],
            center_2d=c2d[:2],
            num_lidar_pts=int(annos['num_points_in_gt'][i]),
            difficulty=int(annos['difficulty'][i]),
            truncated=float(annos['truncated'][i]),
            occluded=int(annos['occluded'][i]),
            alpha=float(annos['alpha'][i]),
            score=float(annos['score'][i]),
            index=int(annos['index'][i]),
            group_id=int(annos['group_ids'][i]),
        ))
    old_info = dict(calib=dict(P2=cam2img), image=dict(image_idx=sample_idx,
                                                       image_shape=(height, width)))
    cam_annos = {k: v for k, v in copy.deepcopy(annos).items()}
    cam_instances = get_kitti_style_2d_boxes(old_info, occluded=[0, 1, 2, 3], annos=cam_annos)
    return dict(sample_idx=sample_idx, images=images, lidar_points=lidar_points,
                instances=instances, cam_instances={'CAM2': cam_instances})


def info_file(data_list: List[dict]) -> dict:
    return dict(metainfo=metainfo(), data_list=data_list)
