# Copyright (c) mmdet3d_skd contributors.
"""KITTI for weakly supervised monocular 3D detection: 2D boxes only."""
import copy
import inspect
from typing import List, Set, Union

import numpy as np
from mmengine.fileio import load

from mmdet3d.datasets import Det3DDataset, KittiDataset
from mmdet3d.datasets.transforms import (LoadAnnotations3D, LoadPointsFromFile,
                                         LoadPointsFromMultiSweeps)
from mmdet3d.registry import DATASETS, TRANSFORMS
from mmdet3d.structures import CameraInstance3DBoxes

# The only annotation fields weak training may see.
WEAK_ANN_KEYS = ('gt_bboxes', 'gt_bboxes_labels')
WEAK_INSTANCE_KEYS = ('bbox', 'bbox_label')
# Data-info keys that carry LiDAR or 3D truth; dropped at load time.
DROPPED_INFO_KEYS = ('cam_instances', 'lidar_points', 'lidar_path',
                     'num_pts_feats', 'lidar_sweeps', 'plane',
                     'pts_instance_mask_path', 'pts_semantic_mask_path',
                     'pts_panoptic_mask_path')
# LoadAnnotations3D flags that would load 3D truth.
_3D_LOAD_FLAGS = ('with_bbox_3d', 'with_label_3d', 'with_bbox_depth',
                  'with_attr_label', 'with_mask_3d', 'with_seg_3d',
                  'with_panoptic_3d')
_LIDAR_LOADERS = (LoadPointsFromFile, LoadPointsFromMultiSweeps)


def _info_name(info: dict) -> str:
    for key in ('sample_idx', 'sample_id'):
        if info.get(key, None) is not None:
            return f'{key}={info[key]}'
    return '<unknown sample>'


@DATASETS.register_module()
class WeakKittiDataset(KittiDataset):
    """KittiDataset whose training samples carry 2D boxes only.

    With ``weak=True`` and ``test_mode=False`` each sample's annotations are
    built from ``info['instances']`` (KITTI ``label_2``: ``bbox`` ->
    ``gt_bboxes`` float32 (N, 4), ``bbox_label`` -> ``gt_bboxes_labels``
    int64 (N,) through ``label_mapping``; DontCare and classes outside the
    config, label -1, removed). ``cam_instances`` is never read: its 2D boxes
    are projected 3D boxes. Every 3D field is dropped at load time, in
    ``ann_info`` and in ``info['instances']``, and so are ``cam_instances``,
    the LiDAR paths and the ground plane. Guards: a pipeline that loads 3D
    annotations or LiDAR raises ValueError at construction, ``use_lidar``
    too; a 3D key in a parsed ``ann_info`` or in a packed data sample raises
    RuntimeError naming the sample. ``filter_empty_gt`` counts 2D boxes
    (the base class counts ``gt_labels_3d``, which weak mode lacks).

    With ``test_mode=True`` (val/test, 3D labels kept for the metric) or
    ``weak=False`` it is KittiDataset, except that an info file of another
    format (mmdet3d v1 list, no 'data_list'/'metainfo') raises a ValueError
    naming the file rather than mmengine's generic error, and a sample
    without instances gets empty annotations instead of mmdet3d 1.4's
    IndexError (see :meth:`_empty_full_ann_info`).

    Args:
        weak (bool): Weak (2D-box) supervision in training. Defaults to True.
        *args, **kwargs: As :class:`KittiDataset`.
    """

    def __init__(self, *args, weak: bool = True, **kwargs) -> None:
        bound = inspect.signature(KittiDataset.__init__).bind(
            None, *args, **kwargs)
        bound.apply_defaults()
        params = dict(bound.arguments)
        params.update(params.pop('kwargs', {}))
        self.weak = bool(weak)
        self.weak_train = self.weak and not params.get('test_mode', False)
        if self.weak_train:
            modality = params.get('modality') or {}
            if modality.get('use_lidar', False):
                raise ValueError(
                    'WeakKittiDataset: weak training never reads LiDAR; use '
                    'modality=dict(use_lidar=False, use_camera=True)')
            self._check_weak_pipeline(params.get('pipeline') or [])
        super().__init__(*args, **kwargs)

    # --------------------------------------------------------------- guards
    @staticmethod
    def _check_weak_pipeline(pipeline) -> None:
        for i, t in enumerate(pipeline):
            if isinstance(t, dict):
                cls = t.get('type', None)
                if isinstance(cls, str):
                    cls = TRANSFORMS.get(cls)
                if not inspect.isclass(cls):
                    continue
                if issubclass(cls, _LIDAR_LOADERS):
                    raise ValueError(
                        f'WeakKittiDataset: pipeline step {i} ({t["type"]}) '
                        'loads LiDAR points; weak training never reads LiDAR')
                if not issubclass(cls, LoadAnnotations3D):
                    continue
                cfg = dict(t)
                cfg.pop('type')
                t = cls(**cfg)
            if isinstance(t, _LIDAR_LOADERS):
                raise ValueError(
                    f'WeakKittiDataset: pipeline step {i} '
                    f'({type(t).__name__}) loads LiDAR points; weak training '
                    'never reads LiDAR')
            if isinstance(t, LoadAnnotations3D):
                bad = [f for f in _3D_LOAD_FLAGS if getattr(t, f, False)]
                if bad:
                    raise ValueError(
                        f'WeakKittiDataset: pipeline step {i} '
                        f'({type(t).__name__}) loads 3D annotations '
                        f'({", ".join(f + "=True" for f in bad)}); weak '
                        'training has 2D boxes only: use LoadAnnotations3D('
                        'with_bbox=True, with_label=True, with_bbox_3d=False, '
                        'with_label_3d=False, with_bbox_depth=False)')

    @staticmethod
    def _check_weak_ann(ann_info: dict, info: dict) -> None:
        extra = sorted(set(ann_info) - set(WEAK_ANN_KEYS))
        inst_extra = sorted({
            k
            for inst in info.get('instances', [])
            for k in inst if k not in WEAK_INSTANCE_KEYS
        })
        leaked = [k for k in DROPPED_INFO_KEYS if k in info]
        if extra or inst_extra or leaked:
            raise RuntimeError(
                f'WeakKittiDataset: {_info_name(info)} carries fields weak '
                f'training must not see: ann_info {extra}, instances '
                f'{inst_extra}, info {leaked}')

    # ------------------------------------------------------------- loading
    def load_data_list(self) -> List[dict]:
        """Load the info file, with errors naming it.

        Same as mmengine's ``BaseDataset.load_data_list``, whose TypeError /
        ValueError for an info file of another format name neither the file
        nor the cause.
        """
        try:
            annotations = load(self.ann_file, backend_args=self.backend_args)
        except FileNotFoundError as e:
            raise FileNotFoundError(
                f'{type(self).__name__}: info file {self.ann_file} not '
                'found') from e
        except Exception as e:
            raise ValueError(f'{type(self).__name__}: cannot read info file '
                             f'{self.ann_file}: {e}') from e
        hint = ('regenerate it with mmdet3d>=1.1 tools/create_data.py or '
                'convert it with tools/dataset_converters/'
                'update_infos_to_v2.py')
        if isinstance(annotations, list):
            raise ValueError(
                f'{type(self).__name__}: {self.ann_file} is an mmdet3d v1.x '
                f'(0.x-era) list-format info file; {hint}')
        if not isinstance(annotations, dict) or \
                'data_list' not in annotations or \
                'metainfo' not in annotations:
            keys = (sorted(annotations) if isinstance(annotations, dict)
                    else type(annotations).__name__)
            raise ValueError(
                f'{type(self).__name__}: {self.ann_file} is not an mmdet3d '
                f"v2 info file (needs 'metainfo' and 'data_list', has "
                f'{keys}); {hint}')
        raw_data_list = annotations['data_list']
        for raw in raw_data_list:
            if not isinstance(raw, dict) or 'images' not in raw or \
                    'instances' not in raw:
                raise ValueError(
                    f'{type(self).__name__}: {self.ann_file}: entry '
                    f'{_info_name(raw) if isinstance(raw, dict) else raw!r} '
                    "lacks 'images'/'instances' (not an mmdet3d v2 info "
                    f'file); {hint}')
        self._use_file_metainfo(annotations['metainfo'])
        for k, v in annotations['metainfo'].items():
            self._metainfo.setdefault(k, v)

        data_list = []
        for raw in raw_data_list:
            data_info = self.parse_data_info(raw)
            if isinstance(data_info, dict):
                data_list.append(data_info)
            else:
                data_list.extend(data_info)
        return data_list

    def _use_file_metainfo(self, metainfo: dict) -> None:
        """Hook for subclasses: the info file's ``metainfo``, before any entry is parsed
        (KITTI's class ids are fixed: nothing to do here)."""

    def parse_data_info(self, info: dict) -> dict:
        """Weak training: drop LiDAR/3D info keys, then Det3DDataset's parse
        (KittiDataset's adds only the LiDAR ground plane and the swap of
        ``instances`` for ``cam_instances``, both unwanted here)."""
        if not self.weak_train:
            return super().parse_data_info(info)
        for key in DROPPED_INFO_KEYS:
            info.pop(key, None)
        info = Det3DDataset.parse_data_info(self, info)
        self._check_weak_ann(info['ann_info'], info)
        return info

    def parse_ann_info(self, info: dict) -> Union[dict, None]:
        """Weak training: 2D boxes and labels from ``info['instances']``.

        ``info['instances']`` is replaced by its 2D-only, cared-for part.
        """
        if not self.weak_train:
            if len(info.get('instances', [])) == 0 and self.load_type in (
                    'fov_image_based', 'mv_image_based'):
                return self._empty_full_ann_info(info)
            return super().parse_ann_info(info)
        return self._weak_ann_info(info)

    def _weak_ann_info(self, info: dict) -> dict:
        """``gt_bboxes``/``gt_bboxes_labels`` of ``info['instances']``, which is cut down to
        its cared-for ``bbox``/``bbox_label`` part (the weak parse)."""
        instances = info.get('instances', [])
        bboxes, labels, kept = [], [], []
        for inst in instances:
            raw_label = inst.get('bbox_label', None)
            if raw_label is None or 'bbox' not in inst:
                raise ValueError(
                    f'WeakKittiDataset: {_info_name(info)} in '
                    f"{self.ann_file}: an instance lacks 'bbox'/'bbox_label'")
            if raw_label not in self.label_mapping:
                raise ValueError(
                    f'WeakKittiDataset: {_info_name(info)} in '
                    f'{self.ann_file}: bbox_label {raw_label} is not a '
                    'KITTI class index '
                    f'(-1..{len(self.METAINFO["classes"]) - 1})')
            label = self.label_mapping[raw_label]
            if label == -1:
                continue
            bbox = np.asarray(inst['bbox'], dtype=np.float32).reshape(-1)
            if bbox.shape != (4, ):
                raise ValueError(
                    f'WeakKittiDataset: {_info_name(info)}: bbox '
                    f'{inst["bbox"]} is not (x1, y1, x2, y2)')
            bboxes.append(bbox)
            labels.append(label)
            kept.append(dict(bbox=list(inst['bbox']), bbox_label=raw_label))
            self.num_ins_per_cat[label] += 1
        info['instances'] = kept
        return dict(
            gt_bboxes=np.stack(bboxes).astype(np.float32)
            if bboxes else np.zeros((0, 4), dtype=np.float32),
            gt_bboxes_labels=np.array(labels, dtype=np.int64))

    def _empty_full_ann_info(self, info: dict) -> dict:
        """KittiDataset's ann_info of a sample without instances.

        mmdet3d 1.4's own empty branch makes ``gt_bboxes_labels`` a 0-d
        array, on which its ``_remove_dontcare`` raises IndexError (every
        image-based KITTI sample without objects crashes val/test).
        """
        lidar2cam = np.array(info['images']['CAM2']['lidar2cam'])
        return dict(
            gt_bboxes_3d=CameraInstance3DBoxes(
                np.zeros((0, 7), dtype=np.float32)).convert_to(
                    self.box_mode_3d, np.linalg.inv(lidar2cam)),
            gt_labels_3d=np.zeros(0, dtype=np.int64),
            gt_bboxes=np.zeros((0, 4), dtype=np.float32),
            gt_bboxes_labels=np.zeros(0, dtype=np.int64),
            centers_2d=np.zeros((0, 2), dtype=np.float32),
            depths=np.zeros(0, dtype=np.float32))

    # ------------------------------------------------------------ sampling
    @staticmethod
    def _num_packed_2d(example: dict, name: str) -> int:
        gt = example['data_samples'].gt_instances
        if 'labels' in gt:
            return len(gt.labels)
        if 'bboxes' in gt:
            return len(gt.bboxes)
        raise RuntimeError(
            f"WeakKittiDataset: {name}: the pipeline packs no 2D boxes; add "
            "'gt_bboxes' and 'gt_bboxes_labels' to the pack keys")

    def prepare_data(self, index: int) -> Union[dict, None]:
        """Weak training: Det3DDataset.prepare_data with 2D-box counts for
        ``filter_empty_gt``, and a check that no 3D field got packed."""
        if not self.weak_train:
            return super().prepare_data(index)
        ori_input_dict = self.get_data_info(index)
        input_dict = copy.deepcopy(ori_input_dict)
        input_dict['box_type_3d'] = self.box_type_3d
        input_dict['box_mode_3d'] = self.box_mode_3d
        name = _info_name(ori_input_dict)

        if self.filter_empty_gt and \
                len(input_dict['ann_info']['gt_bboxes_labels']) == 0:
            return None
        example = self.pipeline(input_dict)
        if example is None:
            return None
        data_sample = example['data_samples']
        leaked = list(data_sample.gt_instances_3d.keys())
        if leaked or data_sample.get('eval_ann_info', None) is not None:
            raise RuntimeError(
                f'WeakKittiDataset: {name}: the packed sample carries 3D '
                f'ground truth ({leaked or "eval_ann_info"}) in weak training')
        num = self._num_packed_2d(example, name)
        if self.filter_empty_gt and num == 0:
            return None
        if self.show_ins_var:
            self._show_ins_var(ori_input_dict['ann_info']['gt_bboxes_labels'],
                               data_sample.gt_instances.labels)
        return example

    def get_cat_ids(self, idx: int) -> Set[int]:
        if not self.weak_train:
            return super().get_cat_ids(idx)
        info = self.get_data_info(idx)
        return set(info['ann_info']['gt_bboxes_labels'].tolist())
