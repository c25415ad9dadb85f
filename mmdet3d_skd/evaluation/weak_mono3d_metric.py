"""Evaluation of a monocular 3D detector on data without 3D labels (a user's own images).

Without 3D truth, two things can still be measured on the val split, and the KITTI metric
where the truth exists:

(a) ``proj2d``: the 2D AP of the projected 3D boxes (enclosing rectangle of the 8 projected
    corners, clipped to the image; boxes reaching behind the camera dropped) against the 2D
    labels, per class and mean, at each IoU of ``iou_thrs``, by mmdet's ``eval_map`` (VOC
    'area' AP). This checks the box's position in the image, size and class, not its depth.
(b) ``depth``: per detection with score >= ``depth_score_thr``, the depth the depth map gives
    the object, ``z*``, from the points inside the projected box by training's own rule
    (:func:`~mmdet3d_skd.models.pseudo_points.batch_pseudo_points`: surface depth plus half the
    visible extent) against the predicted centre depth ``z``: the median of ``|z - z*| / z*``
    over detections with a valid ``z*`` (NaN when none). It measures agreement with the depth
    map (an estimator's, on real data), not accuracy.
(c) ``kitti``: :class:`CPUKittiMetric` on ``kitti_ann_file``, or on ``ann_file`` when its entries
    carry 3D boxes (the results are matched to its entries by position, as KittiMetric does;
    the image names must agree). Keys as KittiMetric's, prefixed ``Kitti metric/``.

mmdet3d's metrics all need 3D labels (KittiMetric, NuScenesMetric, ...) and mmdet's
``CocoMetric`` scores 2D predictions, not projected 3D boxes; hence this metric. It reads its
labels and intrinsics from ``ann_file`` (an info file of ``tools/convert_coco.py``), whose entries
the results index by position (``sample_idx`` of mmengine datasets).
"""
import os.path as osp
from types import SimpleNamespace
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.fileio import load
from mmengine.logging import MMLogger
from mmengine.structures import InstanceData

from mmdet3d.registry import METRICS

ALL_METRICS = ('proj2d', 'depth', 'kitti')


def projected_boxes(bboxes_3d, cam2img, width: int, height: int, min_depth: float = 0.1):
    """``(boxes (M, 4) x1 y1 x2 y2, keep (N,) bool)``: the clipped enclosing rectangles of the
    projected corners of the boxes wholly in front of the camera whose rectangle meets the
    image (``keep`` says which of the N boxes they are)."""
    corners = bboxes_3d.corners.double()  # (N, 8, 3) camera frame
    P = torch.as_tensor(np.asarray(cam2img, dtype=np.float64))[:3]
    hom = torch.cat([corners, torch.ones_like(corners[..., :1])], -1) @ P.T
    z = hom[..., 2]
    front = (corners[..., 2] > min_depth).all(-1) & (z > 0).all(-1)
    uv = hom[..., :2] / torch.where(z.abs() > 1e-9, z, torch.ones_like(z))[..., None]
    lo, hi = uv.min(1).values, uv.max(1).values
    x1, y1 = lo[:, 0].clamp(0, width), lo[:, 1].clamp(0, height)
    x2, y2 = hi[:, 0].clamp(0, width), hi[:, 1].clamp(0, height)
    keep = front & (x2 - x1 > 0) & (y2 - y1 > 0)
    boxes = torch.stack([x1, y1, x2, y2], 1)[keep]
    return boxes.numpy(), keep.numpy()


@METRICS.register_module()
class WeakMono3DMetric(BaseMetric):
    """Projected-box 2D AP, depth-map agreement and (with 3D labels) the KITTI metric.

    See the module docstring. Usable as ``val_evaluator``/``test_evaluator``.

    Args:
        ann_file (str): The val info file (2D labels, ``cam2img``, ``depth_path``).
        metric (str | Sequence[str]): Any of 'proj2d', 'depth', 'kitti'. Defaults to all;
            'depth' is skipped (with a log line) without ``depth_prefix``, 'kitti' without 3D
            labels.
        iou_thrs (Sequence[float]): IoUs of the projected-box AP. Defaults to (0.5, 0.7).
        depth_prefix (str, optional): Folder of the depth maps (``depth_path`` is relative to
            it), as ``LoadDepthMap(depth_prefix=...)`` of training.
        depth_loader (dict, optional): Other ``LoadDepthMap`` arguments (``scale``, ...).
        depth_score_thr (float): Detections scored in (b). Defaults to 0.3.
        dims_prior (Sequence, optional): ``(l, h, w)`` per class for (b); defaults to the
            ann_file's ``metainfo['dims_prior']`` or the size-prior table.
        pseudo_points (dict): ``batch_pseudo_points`` arguments for (b). Defaults to the
            configs' ``surface_quantile=0.2`` and ``depth_stride=4`` (full-resolution maps).
        kitti_ann_file (str, optional): A KITTI-layout info file with the 3D labels of the
            same images in the same order, for (c).
        backend_args (dict, optional): mmengine file backend arguments.
        collect_device, prefix: As mmengine's ``BaseMetric``.
    """

    def __init__(self,
                 ann_file: str,
                 metric=ALL_METRICS,
                 iou_thrs: Sequence[float] = (0.5, 0.7),
                 depth_prefix: Optional[str] = None,
                 depth_loader: Optional[dict] = None,
                 depth_score_thr: float = 0.3,
                 dims_prior: Optional[Sequence[Sequence[float]]] = None,
                 pseudo_points: Optional[dict] = None,
                 kitti_ann_file: Optional[str] = None,
                 backend_args: Optional[dict] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        metrics = [metric] if isinstance(metric, str) else list(metric)
        bad = [m for m in metrics if m not in ALL_METRICS]
        if bad:
            raise ValueError(f'WeakMono3DMetric: unknown metric(s) {bad}; choose from '
                             f'{list(ALL_METRICS)}')
        self.metrics = metrics
        self.ann_file = ann_file
        self.iou_thrs = tuple(float(t) for t in iou_thrs)
        self.depth_prefix = depth_prefix
        self.depth_loader = dict(depth_loader or {})
        self.depth_score_thr = float(depth_score_thr)
        self.dims_prior = dims_prior
        self.pseudo_points = dict(surface_quantile=0.2, depth_stride=4)
        self.pseudo_points.update(pseudo_points or {})
        self.kitti_ann_file = kitti_ann_file
        self.backend_args = backend_args

    # ------------------------------------------------------------------ collection
    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            pred = sample['pred_instances_3d']
            pred_2d = sample.get('pred_instances', InstanceData())
            self.results.append(dict(
                sample_idx=sample['sample_idx'],
                img_path=sample.get('img_path', None),
                pred_instances_3d={k: v.to('cpu') for k, v in pred.items()},
                pred_instances={k: v.to('cpu') for k, v in pred_2d.items()}))

    # ------------------------------------------------------------------ helpers
    def _load_infos(self):
        try:
            infos = load(self.ann_file, backend_args=self.backend_args)
        except FileNotFoundError:
            raise FileNotFoundError(f'WeakMono3DMetric: ann_file {self.ann_file} not found')
        if not isinstance(infos, dict) or 'data_list' not in infos:
            raise ValueError(f'WeakMono3DMetric: {self.ann_file} is not an mmdet3d v2 info '
                             'file (no data_list)')
        return infos.get('metainfo', {}), infos['data_list']

    def _aligned(self, results: List[dict], infos: List[dict], what: str) -> List[dict]:
        """``results`` sorted by ``sample_idx``, checked against the entries of ``what``."""
        results = sorted(results, key=lambda r: r['sample_idx'])
        if len(results) != len(infos) or \
                [r['sample_idx'] for r in results] != list(range(len(infos))):
            raise ValueError(f'WeakMono3DMetric: {len(results)} results for the {len(infos)} '
                             f'entries of {what}: the val dataloader must run over that file, '
                             'in its order')
        for r, info in zip(results, infos):
            got = r.get('img_path')
            want = info['images']['CAM2']['img_path']
            if got and osp.basename(got) != osp.basename(want):
                raise ValueError(f'WeakMono3DMetric: result {r["sample_idx"]} is image {got} '
                                 f'but entry {r["sample_idx"]} of {what} is {want}: not the '
                                 'same images in the same order')
        return results

    def _gt(self, info: dict, file_classes, classes) -> dict:
        bboxes, labels = [], []
        for inst in info.get('instances', []):
            lab = inst.get('bbox_label', -1)
            name = file_classes[lab] if file_classes and 0 <= lab < len(file_classes) else None
            if name in classes:
                bboxes.append(inst['bbox'])
                labels.append(classes.index(name))
        return dict(bboxes=np.array(bboxes, dtype=np.float32).reshape(-1, 4),
                    labels=np.array(labels, dtype=np.int64))

    def _dims_prior(self, meta: dict, classes: Sequence[str]) -> torch.Tensor:
        if self.dims_prior is not None:
            return torch.tensor(self.dims_prior, dtype=torch.float32)
        names = meta.get('classes')
        if names and meta.get('dims_prior') and all(c in names for c in classes):
            return torch.tensor([meta['dims_prior'][names.index(c)] for c in classes],
                                dtype=torch.float32)
        from ..datasets.size_priors import resolve_size_priors
        return torch.tensor(resolve_size_priors(classes)[0], dtype=torch.float32)

    # ------------------------------------------------------------------ metrics
    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        from mmdet.evaluation.functional import eval_map

        from ..datasets.weak_mono3d_dataset import file_classes, has_3d_labels
        logger = MMLogger.get_current_instance()
        classes = list(self.dataset_meta['classes'])
        meta, infos = self._load_infos()
        results = self._aligned(results, infos, self.ann_file)
        names = file_classes(meta) or classes
        out: Dict[str, float] = {}

        proj = []
        for r, info in zip(results, infos):
            cam = info['images']['CAM2']
            pred = r['pred_instances_3d']
            if 'bboxes_3d' in pred and len(pred['bboxes_3d']):
                boxes, keep = projected_boxes(pred['bboxes_3d'], cam['cam2img'], cam['width'],
                                              cam['height'])
                scores = pred['scores_3d'].numpy()[keep]
                labels = pred['labels_3d'].numpy()[keep]
                depth = pred['bboxes_3d'].tensor[:, 2].numpy()[keep]
            else:
                boxes, scores = np.zeros((0, 4)), np.zeros(0)
                labels, depth = np.zeros(0, dtype=np.int64), np.zeros(0)
            proj.append((boxes, scores, labels, depth))

        if 'proj2d' in self.metrics:
            dets = [[np.concatenate([b[lab == c], s[lab == c, None]], 1).astype(np.float32)
                     for c in range(len(classes))] for b, s, lab, _ in proj]
            gts = [self._gt(info, names, classes) for info in infos]
            for thr in self.iou_thrs:
                # one worker process: training's CPU cores are busy enough
                mean_ap, per_class = eval_map(dets, gts, iou_thr=thr, dataset=classes,
                                              logger='silent', nproc=1)
                key = f'AP{int(round(thr * 100))}'
                out[f'proj2d/{key}'] = float(mean_ap)
                for c, res in zip(classes, per_class):
                    if res['num_gts'] > 0:
                        out[f'proj2d/{c}_{key}'] = float(res['ap'])

        if 'depth' in self.metrics:
            if self.depth_prefix is None:
                logger.info('WeakMono3DMetric: no depth_prefix, depth agreement skipped')
            else:
                out.update(self._depth_agreement(proj, infos, classes, meta))

        if 'kitti' in self.metrics:
            kitti_file = self.kitti_ann_file
            if kitti_file is None and any(has_3d_labels(i) for i in infos):
                kitti_file = self.ann_file
            if kitti_file is not None:
                out.update(self._kitti(results, kitti_file, logger))
        return out

    def _depth_agreement(self, proj, infos, classes, meta) -> Dict[str, float]:
        from ..datasets.transforms import LoadDepthMap
        from ..models.pseudo_points import batch_pseudo_points
        loader = LoadDepthMap(depth_prefix=self.depth_prefix, backend_args=self.backend_args,
                              **self.depth_loader)
        prior = self._dims_prior(meta, classes)
        kwargs = dict(self.pseudo_points)
        stride = int(kwargs.pop('depth_stride', 1))
        errors, num_dets = [], 0
        for (boxes, scores, labels, depth), info in zip(proj, infos):
            sel = scores >= self.depth_score_thr
            if not sel.any():
                continue
            num_dets += int(sel.sum())
            cam = info['images']['CAM2']
            dmap = loader.transform(dict(images=info['images'], img_path=cam['img_path'],
                                         sample_idx=info.get('sample_idx')))['depth_map']
            if dmap.shape != (cam['height'], cam['width']):
                raise ValueError(f'WeakMono3DMetric: depth map of {cam["img_path"]} is '
                                 f'{dmap.shape} but the image is {cam["height"]}x'
                                 f'{cam["width"]}')
            n = int(sel.sum())
            P = torch.eye(4)
            P[:3, :4] = torch.tensor(cam['cam2img'], dtype=torch.float32)[:3, :4]
            targets = SimpleNamespace(batch_idx=torch.zeros(n, dtype=torch.long),
                                      boxes2d=torch.tensor(boxes[sel], dtype=torch.float32),
                                      labels=torch.tensor(labels[sel]),
                                      cam2img=P.expand(n, 4, 4))
            pseudo = batch_pseudo_points(torch.from_numpy(dmap)[None], targets, prior,
                                         depth_stride=stride, **kwargs)
            zt = pseudo.depth_target.numpy()
            ok = pseudo.valid.numpy() & np.isfinite(zt) & (zt > 0)
            errors.extend((np.abs(depth[sel][ok] - zt[ok]) / zt[ok]).tolist())
        return {'depth/median_rel_err': float(np.median(errors)) if errors else float('nan'),
                'depth/num_dets': float(num_dets), 'depth/num_valid': float(len(errors))}

    def _kitti(self, results: List[dict], kitti_file: str, logger) -> Dict[str, float]:
        from .cpu_kitti_metric import CPUKittiMetric
        if kitti_file != self.ann_file:
            kinfos = load(kitti_file, backend_args=self.backend_args)['data_list']
            self._aligned(results, kinfos, kitti_file)
        kitti = CPUKittiMetric(ann_file=kitti_file, metric='bbox',
                               backend_args=self.backend_args)
        kitti.dataset_meta = self.dataset_meta
        res = [dict(sample_idx=r['sample_idx'],
                    pred_instances_3d=InstanceData(**r['pred_instances_3d']),
                    pred_instances=InstanceData(**r['pred_instances'])) for r in results]
        return {f'Kitti metric/{k}': v for k, v in kitti.compute_metrics(res).items()}
