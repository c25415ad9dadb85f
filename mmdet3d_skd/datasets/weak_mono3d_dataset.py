# Copyright (c) mmdet3d_skd contributors.
"""A weak monocular 3D dataset of any classes: a user's own images, 2D boxes and intrinsics."""
from typing import List, Optional

import numpy as np

from mmdet3d.datasets import Det3DDataset
from mmdet3d.registry import DATASETS
from .weak_kitti_dataset import DROPPED_INFO_KEYS, WeakKittiDataset


def has_3d_labels(info: dict) -> bool:
    """Whether an info entry carries 3D truth (KITTI-layout val/test files do)."""
    return 'cam_instances' in info or any(
        'bbox_3d' in inst for inst in info.get('instances', []))


def file_classes(metainfo: dict) -> Optional[List[str]]:
    """The class names the entries' ``bbox_label`` index: ``metainfo['classes']`` (written by
    ``tools/convert_coco.py``), else ``metainfo['categories']`` ``{name: id}`` (mmdet3d's KITTI
    infos; ids < 0 such as DontCare left out), else None."""
    if metainfo.get('classes'):
        return list(metainfo['classes'])
    cats = metainfo.get('categories')
    if isinstance(cats, dict) and cats:
        ids = {int(v): k for k, v in cats.items() if int(v) >= 0}
        if sorted(ids) != list(range(len(ids))):
            return None
        return [ids[i] for i in range(len(ids))]
    return None


@DATASETS.register_module()
class WeakMono3DDataset(WeakKittiDataset):
    """:class:`WeakKittiDataset` whose classes are the info file's own.

    For the info files ``tools/convert_coco.py`` writes from a COCO json (2D boxes, labels,
    ``cam2img``, ``depth_path``; nothing 3D), and for mmdet3d's KITTI-layout files alike.

    - Classes: each entry's ``bbox_label`` indexes the info file's classes (``metainfo``
      ``classes``, or ``categories`` as in KITTI files). The config's
      ``metainfo=dict(classes=[...])`` (required) selects and orders them by name; labels of
      other classes become -1 and are dropped. A config class the file lacks is a ValueError
      naming the file. (mmdet3d's datasets fix the class list in the class, ``METAINFO``.)
    - Weak training: WeakKittiDataset's path and every guard of it, unchanged (2D boxes and
      labels only; a 3D-loading pipeline, LiDAR, or a 3D field reaching a sample raise).
    - Val/test: an entry without 3D truth (no ``bbox_3d``, no ``cam_instances``) is parsed 2D
      only (``eval_ann_info``: ``gt_bboxes``, ``gt_bboxes_labels``); an entry with 3D truth goes
      KittiDataset's way (``WeakMono3DMetric`` then also gives the KITTI metric).
    - No LiDAR: an image without ``lidar2img`` gets ``lidar2img = cam2img`` (the camera is the
      reference frame), which mmdet3d's ``Det3DDataset`` reads.

    Args:
        metainfo (dict): ``dict(classes=[...])``, the classes to train, in the head's order.
        *args, **kwargs: As :class:`WeakKittiDataset`.
    """

    def __init__(self, *args, metainfo: Optional[dict] = None, **kwargs) -> None:
        if not metainfo or not metainfo.get('classes'):
            raise ValueError('WeakMono3DDataset needs metainfo=dict(classes=[...]): the '
                             'classes to train, by name (tools/convert_coco.py prints them)')
        # Det3DDataset maps labels through self.METAINFO['classes']; the file's own list
        # replaces this identity in _use_file_metainfo, before any entry is parsed
        self.METAINFO = dict(classes=tuple(metainfo['classes']))
        super().__init__(*args, metainfo=metainfo, **kwargs)

    def _use_file_metainfo(self, metainfo: dict) -> None:
        wanted = list(self.METAINFO['classes'])
        names = file_classes(metainfo)
        if names is None:  # no class list in the file: its labels index the config's
            return
        absent = [c for c in wanted if c not in names]
        if absent:
            raise ValueError(f'WeakMono3DDataset: classes {absent} of the config are not in '
                             f'{self.ann_file}, whose classes are {names}')
        self.METAINFO = dict(classes=tuple(names))
        self.label_mapping = {i: (wanted.index(n) if n in wanted else -1)
                              for i, n in enumerate(names)}
        self.label_mapping[-1] = -1

    def parse_data_info(self, info: dict) -> dict:
        for cam in info.get('images', {}).values():
            if isinstance(cam, dict) and 'cam2img' in cam and 'lidar2img' not in cam:
                cam['lidar2img'] = np.array(cam['cam2img'], dtype=np.float64)
        if self.weak_train or has_3d_labels(info):
            return super().parse_data_info(info)
        for key in DROPPED_INFO_KEYS:
            info.pop(key, None)
        return Det3DDataset.parse_data_info(self, info)

    def parse_ann_info(self, info: dict) -> dict:
        if not self.weak_train and not has_3d_labels(info):
            return self._weak_ann_info(info)
        return super().parse_ann_info(info)
