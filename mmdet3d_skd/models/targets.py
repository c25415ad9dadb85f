"""Training targets of the monocular 3D heads: the shared target structure (:class:`Targets`)
and its assignment from the samples' 2D boxes (:func:`assign_targets`), called by both heads
(``SKDHead`` and ``projects/smoke_skd``'s ``SMOKESKDHead``)."""
from typing import NamedTuple, Optional, Sequence, Tuple

import torch
from mmdet.models.utils.gaussian_target import gaussian_radius, gen_gaussian_target
from torch import Tensor

from .geometry import to_4x4


class Targets(NamedTuple):
    """Per-instance training targets of a batch, on the head's feature grid.

    ``batch_idx``, ``cells`` (N,2 long, x/y cell), ``labels`` (N,), ``boxes2d`` (N,4 input-image
    pixels), ``cam2img`` (N,4,4), ``heatmap`` (B,K,h,w Gaussian peaks at the 2D box centres),
    ``stride`` (input pixels per cell) and, in full supervision only, ``boxes3d`` (N,7 camera
    boxes, bottom centre), ``centers2d`` (N,2) and ``depths`` (N,).
    """
    batch_idx: Tensor
    cells: Tensor
    labels: Tensor
    boxes2d: Tensor
    cam2img: Tensor
    heatmap: Tensor
    stride: float
    boxes3d: Optional[Tensor] = None
    centers2d: Optional[Tensor] = None
    depths: Optional[Tensor] = None


def input_hw(targets: Targets) -> Tuple[float, float]:
    """(h, w) of the network input: a truncated object's 2D label is clipped to it (by a
    crop or the image border), so its projected 3D box is clipped the same way."""
    h, w = targets.heatmap.shape[-2:]
    return h * targets.stride, w * targets.stride


def sample_cam2img(data_samples: Sequence, device, dtype=torch.float32) -> Tensor:
    """(B,4,4) ``cam2img`` of each sample's metainfo (updated by the geometric transforms)."""
    mats = [torch.as_tensor(s.metainfo['cam2img'], dtype=dtype) for s in data_samples]
    return to_4x4(torch.stack([to_4x4(m) for m in mats])).to(device)


def assign_targets(data_samples: Sequence, feat_shape: Tuple[int, int],
                   input_shape: Tuple[int, int], device, num_classes: int,
                   min_overlap: float = 0.7, supervision: str = 'weak',
                   head: str = 'SKDHead') -> Targets:
    """Heatmap and per-instance targets from the samples' 2D boxes (and 3D, if
    ``supervision == 'full'``): a Gaussian peak per box at its centre's cell (CenterNet's
    radius for ``min_overlap``), ``num_classes`` heatmap channels. ``head`` names the caller
    in the error on a label outside the classes."""
    h, w = feat_shape
    stride = input_shape[0] / h
    heatmap = torch.zeros(len(data_samples), num_classes, h, w, device=device)
    cam2img = sample_cam2img(data_samples, device)
    fields = {k: [] for k in ('batch_idx', 'cells', 'labels', 'boxes2d', 'cam2img')}
    full = {k: [] for k in ('boxes3d', 'centers2d', 'depths')}
    for i, sample in enumerate(data_samples):
        gt = sample.gt_instances
        boxes = gt.bboxes.to(device).float().reshape(-1, 4)
        labels = gt.labels.to(device).long().reshape(-1)
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"{head}: sample {sample.metainfo.get('img_path', i)} has class labels "
                f'{labels.unique().tolist()} outside 0..{num_classes - 1}; check the '
                "config's classes")
        ctr = (boxes[:, :2] + boxes[:, 2:]) / 2 / stride
        cells = torch.stack([ctr[:, 0].floor().clamp(0, w - 1),
                             ctr[:, 1].floor().clamp(0, h - 1)], 1).long()
        for box, cell, label in zip(boxes, cells, labels):
            bw, bh = ((box[2:] - box[:2]) / stride).tolist()
            radius = max(0, int(gaussian_radius((bh, bw), min_overlap)))
            gen_gaussian_target(heatmap[i, label], cell.tolist(), radius)
        fields['batch_idx'].append(torch.full_like(labels, i))
        fields['cells'].append(cells)
        fields['labels'].append(labels)
        fields['boxes2d'].append(boxes)
        fields['cam2img'].append(cam2img[i].expand(len(labels), 4, 4))
        if supervision == 'full':
            gt3d = sample.gt_instances_3d
            full['boxes3d'].append(gt3d.bboxes_3d.tensor.to(device).float()[:, :7])
            full['centers2d'].append(gt3d.centers_2d.to(device).float().reshape(-1, 2))
            full['depths'].append(gt3d.depths.to(device).float().reshape(-1))
    cat = {k: torch.cat(v) for k, v in fields.items()}
    extra = {k: torch.cat(v) for k, v in full.items()} if supervision == 'full' else {}
    return Targets(heatmap=heatmap, stride=stride, **cat, **extra)
