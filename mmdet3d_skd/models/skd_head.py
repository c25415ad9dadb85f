"""SKDHead: the anchor-free monocular 3D head of both branches (teacher and student)."""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmcv.cnn import ConvModule
from mmdet.models.utils.gaussian_target import get_local_maximum, get_topk_from_heatmap
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmdet3d.registry import MODELS
from mmdet3d.structures import CameraInstance3DBoxes
from ..datasets.kitti_format import KITTI_DIMS_PRIOR
from .depth_fusion_neck import pool_depth
from .geometry import alpha_to_yaw, backproject, camera_rays, gravity_to_bottom, to_4x4
from .targets import Targets, assign_targets, input_hw, sample_cam2img  # noqa: F401

# Channels of each prediction map, in the order they are stacked in ``SKDHead.forward``.
OUTPUTS = (('bbox2d', 4), ('offset', 2), ('depth', 1), ('depth_logvar', 1), ('dims', 3),
           ('orient', 2))
FULL_3D_KEYS = ('bboxes_3d', 'labels_3d', 'centers_2d', 'depths')


@MODELS.register_module()
class SKDHead(BaseModule):
    """CenterNet-style monocular 3D head (SMOKE / MonoFlex / MonoDLE family).

    Per feature cell: class heatmap at 2D box centres; 2D box as (l, t, r, b) distances in
    cells; offset (cells) from the cell to the projected 3D centre; depth with a predicted
    log-variance s (aleatoric), either ``depth_mode='direct'``: z = exp(d), or
    ``depth_mode='geometric'`` (default): z = f_y * H_prior / h_2d * exp(d), the pinhole depth of
    an object of the class's prior height whose 2D box is h_2d pixels tall (the predicted 2D
    box, detached), corrected by a learned log-ratio d (the geometric depth prior of GUPNet /
    MonoFlex; it makes depth learnable in a few hundred iterations instead of thousands, and
    needs nothing 3D), or ``depth_mode='map'`` (the teacher, which holds the depth map):
    z = D_cell * exp(d), with D_cell the depth map averaged over the cell's pixels (its valid
    ones; where none is valid, the geometric depth), so that the teacher starts from what the
    map says at the object and learns only the step from the visible surface to the centre;
    dimensions as log-ratios to the class prior,
    dims = prior * exp(q); orientation as (sin alpha, cos alpha). Decoding: the 3D gravity centre
    is the back-projection of (cell + offset) at depth z through ``cam2img``;
    yaw = alpha + atan2(x, z).

    Losses: Gaussian focal loss on the heatmap, L1 + GIoU on the 2D boxes, and then either
    ``supervision='weak'``: ``loss_weak3d`` (WeakMono3DLoss: pseudo points from the depth map,
    no 3D label), or ``supervision='full'``: the 3D labels (Laplacian depth, L1 offset, dims
    and orientation), the fully supervised baseline, or ``supervision='2d'``: nothing more (the
    2D-only pretraining of the shared encoder, ``configs/benchmarks/pretrain_2d_synth.py``;
    weak-legal: it reads only the 2D label boxes).

    Args:
        num_classes: classes of the heatmap.
        in_channels / feat_channels: input and hidden channels of each branch.
        dims_prior: (num_classes, 3) mean l, h, w per class, in the class order of the config.
        supervision: 'weak', 'full' or '2d'.
        depth_mode: 'geometric' (default), 'direct' or 'map' (see above; ``forward`` then
            needs the depth map).
        depth_init: initial depth (metres) of ``depth_mode='direct'``.
        camera_rays: feed the regression trunk each cell's camera ray (X/Z, Y/Z through
            ``cam2img``, :func:`geometry.camera_rays`) as two more input channels, so that
            depth can use where an object stands in the image (docs/benchmarks.md, levers);
            ``forward`` then needs ``cam2img`` and ``input_hw``.
        max_logvar: bound of |s| (keeps exp(-s) finite).
        test_cfg: ``topk``, ``local_max_kernel``, ``score_thr``.
    """
    DEFAULT_TEST_CFG = dict(topk=50, local_max_kernel=3, score_thr=0.05)

    def __init__(self,
                 num_classes: int = 3,
                 in_channels: int = 64,
                 feat_channels: int = 64,
                 dims_prior: Sequence[Sequence[float]] = KITTI_DIMS_PRIOR,
                 supervision: str = 'weak',
                 depth_mode: str = 'geometric',
                 depth_init: float = 20.0,
                 camera_rays: bool = False,
                 max_logvar: float = 5.0,
                 min_overlap: float = 0.7,
                 loss_heatmap: dict = dict(type='mmdet.GaussianFocalLoss', loss_weight=1.0),
                 loss_bbox2d: dict = dict(type='mmdet.L1Loss', loss_weight=0.1),
                 loss_giou2d: dict = dict(type='mmdet.GIoULoss', loss_weight=1.0),
                 loss_weak3d: dict = dict(type='WeakMono3DLoss'),
                 full_loss_weights: dict = dict(depth=1.0, offset=1.0, dims=1.0, orient=1.0),
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if supervision not in ('weak', 'full', '2d'):
            raise ValueError(f"SKDHead: supervision must be 'weak', 'full' or '2d', "
                             f'got {supervision!r}')
        if depth_mode not in ('geometric', 'direct', 'map'):
            raise ValueError(f"SKDHead: depth_mode must be 'geometric', 'direct' or 'map', "
                             f'got {depth_mode!r}')
        self.depth_mode = depth_mode
        prior = torch.as_tensor(dims_prior, dtype=torch.float32)
        if prior.shape != (num_classes, 3) or (prior <= 0).any():
            raise ValueError(f'SKDHead: dims_prior must be {num_classes} positive (l, h, w) '
                             f'rows, one per class; got {dims_prior}')
        self.register_buffer('dims_prior', prior, persistent=False)
        self.num_classes = num_classes
        self.supervision = supervision
        self.max_logvar = max_logvar
        self.min_overlap = min_overlap
        self.full_loss_weights = full_loss_weights
        # the detector passes its own test_cfg down (mmdet's convention); keys not used here
        # (e.g. the detector's ``branch``) are ignored
        self.test_cfg = dict(self.DEFAULT_TEST_CFG, **(test_cfg or {}))

        # a classification branch and one shared regression trunk with a 1x1 output per
        # quantity: separate 3x3 branches per quantity cost more than the encoder on a CPU
        self.heatmap_head = nn.Sequential(
            ConvModule(in_channels, feat_channels, 3, padding=1),
            nn.Conv2d(feat_channels, num_classes, 1))
        self.camera_rays = camera_rays
        self.reg_trunk = ConvModule(in_channels + (2 if camera_rays else 0), feat_channels, 3,
                                    padding=1)
        self.reg_heads = nn.ModuleDict(
            {name: nn.Conv2d(feat_channels, c, 1) for name, c in OUTPUTS})
        nn.init.constant_(self.heatmap_head[-1].bias, -2.19)  # prior 0.1, CenterNet
        nn.init.constant_(self.reg_heads['depth'].bias,
                          math.log(depth_init) if depth_mode == 'direct' else 0.0)
        for name in ('offset', 'depth', 'depth_logvar', 'dims'):
            nn.init.normal_(self.reg_heads[name].weight, std=1e-3)
        nn.init.constant_(self.reg_heads['bbox2d'].bias, 1.0)

        self.loss_heatmap = MODELS.build(loss_heatmap)
        self.loss_bbox2d = MODELS.build(loss_bbox2d)
        self.loss_giou2d = MODELS.build(loss_giou2d)
        self.loss_weak3d = MODELS.build(loss_weak3d) if supervision == 'weak' else None

    # ------------------------------------------------------------------ forward / decode
    def forward(self, x, cam2img: Optional[Tensor] = None,
                input_hw: Optional[Tuple[int, int]] = None,
                depth: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Raw prediction maps from the feature ``x`` (B,C,h,w) (or a tuple: its first map);
        ``cam2img`` (B,4,4) and the input image's ``input_hw`` for ``camera_rays``; the input
        image's depth map ``depth`` (B,1,H,W) for ``depth_mode='map'`` (kept, pooled to the
        feature grid, as the map ``depth_ref``)."""
        if isinstance(x, (list, tuple)):
            x = x[0]
        out = {'heatmap': self.heatmap_head(x)}
        if self.depth_mode == 'map':
            if depth is None:
                raise ValueError("SKDHead(depth_mode='map') needs the depth map in forward "
                                 '(the detector passes it to the teacher head)')
            out['depth_ref'] = pool_depth(depth.to(x.dtype), x.shape[-2:])
        if self.camera_rays:
            if cam2img is None or input_hw is None:
                raise ValueError('SKDHead(camera_rays=True) needs cam2img and input_hw in '
                                 'forward (the detector passes them)')
            x = torch.cat([x, camera_rays(cam2img, x.shape[-2:], input_hw).to(x.dtype)], 1)
        reg = self.reg_trunk(x)
        out.update({name: head(reg) for name, head in self.reg_heads.items()})
        return out

    @staticmethod
    def gather(preds: Dict[str, Tensor], batch_idx: Tensor, cells: Tensor) -> Dict[str, Tensor]:
        """Raw predictions (N, C) of every map at the given cells (x, y) of given images."""
        return {k: v[batch_idx, :, cells[:, 1], cells[:, 0]] for k, v in preds.items()
                if k != 'heatmap'}

    def decode(self, raw: Dict[str, Tensor], cells: Tensor, labels: Tensor, cam2img: Tensor,
               stride: float) -> Dict[str, Tensor]:
        """Per-instance boxes from raw predictions at ``cells`` (see the class docstring).

        Returns centre (gravity, camera frame), dims (l,h,w), yaw, alpha, depth, depth_logvar,
        uv (projected 3D centre, pixels), box2d (pixels) and the raw log-ratio ``dims_log``.
        """
        p = (cells.to(raw['offset'].dtype) + 0.5) * stride
        ltrb = raw['bbox2d'].clamp(min=0) * stride
        box2d = torch.cat([p - ltrb[:, :2], p + ltrb[:, 2:]], 1)
        uv = p + raw['offset'] * stride
        log_depth = raw['depth'][:, 0]
        if self.depth_mode in ('geometric', 'map'):
            h2d = (ltrb[:, 1] + ltrb[:, 3]).detach().clamp(min=1.0)
            fy = to_4x4(cam2img)[..., 1, 1].expand(len(h2d))
            ref = torch.log(fy * self.dims_prior[labels][:, 1] / h2d)
            if self.depth_mode == 'map':
                d_cell = raw['depth_ref'][:, 0]
                ref = torch.where(d_cell > 0, torch.log(d_cell.clamp(min=1e-3)), ref)
            log_depth = log_depth + ref
        depth = torch.exp(log_depth.clamp(math.log(0.5), math.log(200.0)))
        center = backproject(uv, depth, cam2img)
        dims_log = raw['dims'].clamp(-2.0, 2.0)
        dims = self.dims_prior[labels] * torch.exp(dims_log)
        orient = raw['orient']
        alpha = torch.atan2(orient[:, 0], orient[:, 1])
        return dict(center=center, dims=dims, dims_log=dims_log, yaw=alpha_to_yaw(alpha, center),
                    alpha=alpha, depth=depth,
                    depth_logvar=raw['depth_logvar'][:, 0].clamp(-self.max_logvar,
                                                                 self.max_logvar),
                    uv=uv, box2d=box2d, orient=orient)

    # ------------------------------------------------------------------ targets
    def get_targets(self, data_samples: Sequence, feat_shape: Tuple[int, int],
                    input_shape: Tuple[int, int], device) -> Targets:
        """Heatmap and per-instance targets from the samples' 2D boxes (and 3D, if full)."""
        return assign_targets(data_samples, feat_shape, input_shape, device, self.num_classes,
                              self.min_overlap, self.supervision, type(self).__name__)

    # ------------------------------------------------------------------ losses
    def loss_by_feat(self, preds: Dict[str, Tensor], targets: Targets,
                     pseudo=None) -> Dict[str, Tensor]:
        """Losses of one branch. ``pseudo``: PseudoPoints of the instances (weak mode)."""
        num = max(1, len(targets.labels))
        heat = preds['heatmap'].sigmoid().clamp(1e-4, 1 - 1e-4)
        losses = {'loss_heatmap': self.loss_heatmap(heat, targets.heatmap, avg_factor=num)}
        raw = self.gather(preds, targets.batch_idx, targets.cells)
        dec = self.decode(raw, targets.cells, targets.labels, targets.cam2img, targets.stride)
        p = (targets.cells.float() + 0.5) * targets.stride
        ltrb_t = torch.cat([p - targets.boxes2d[:, :2], targets.boxes2d[:, 2:] - p], 1)
        losses['loss_bbox2d'] = self.loss_bbox2d(raw['bbox2d'], ltrb_t / targets.stride,
                                                 avg_factor=num)
        losses['loss_giou2d'] = self.loss_giou2d(dec['box2d'], targets.boxes2d, avg_factor=num)
        if self.supervision == 'weak':
            if pseudo is None:
                raise ValueError('SKDHead(supervision="weak") needs the pseudo points of the '
                                 'depth map; is a depth map loaded in the training pipeline?')
            losses.update(self.loss_weak3d(dec, pseudo, targets.boxes2d, targets.cam2img,
                                           self.dims_prior[targets.labels],
                                           img_shape=input_hw(targets)))
        elif self.supervision == 'full':
            losses.update(self.loss_full3d(dec, raw, targets, p))
        return losses

    def loss_full3d(self, dec, raw, targets: Targets, p: Tensor) -> Dict[str, Tensor]:
        """Fully supervised 3D terms (the upper-bound baseline): needs the 3D labels."""
        wt, n = self.full_loss_weights, max(1, len(targets.labels))
        gt = targets.boxes3d
        s = dec['depth_logvar']
        l_depth = (torch.abs(dec['depth'] - targets.depths) * torch.exp(-s) + s).sum() / n
        off_t = (targets.centers2d - p) / targets.stride
        l_off = torch.abs(raw['offset'] - off_t).sum() / n
        dims_t = torch.log(gt[:, 3:6].clamp(min=1e-2) / self.dims_prior[targets.labels])
        l_dims = torch.abs(dec['dims_log'] - dims_t).sum() / n
        alpha_t = gt[:, 6] - torch.atan2(gt[:, 0], gt[:, 2])
        orient_t = torch.stack([torch.sin(alpha_t), torch.cos(alpha_t)], 1)
        l_orient = torch.abs(dec['orient'] - orient_t).sum() / n
        return dict(loss_depth=wt['depth'] * l_depth, loss_offset=wt['offset'] * l_off,
                    loss_dims=wt['dims'] * l_dims, loss_orient=wt['orient'] * l_orient)

    # ------------------------------------------------------------------ inference
    def predict_by_feat(self, preds: Dict[str, Tensor], data_samples: Sequence,
                        input_shape: Tuple[int, int]) -> Tuple[List[InstanceData],
                                                               List[InstanceData]]:
        """3D (CameraInstance3DBoxes) and 2D detections of each image."""
        cfg = self.test_cfg
        heat = get_local_maximum(preds['heatmap'].sigmoid(), cfg.get('local_max_kernel', 3))
        return detections_from_heatmap(self, heat, preds, data_samples, input_shape,
                                       cfg.get('topk', 50), cfg.get('score_thr', 0.05))


def detections_from_heatmap(head, heat: Tensor, preds: Dict[str, Tensor], data_samples: Sequence,
                            input_shape: Tuple[int, int], topk: int,
                            score_thr: float) -> Tuple[List[InstanceData], List[InstanceData]]:
    """The top-k peaks of ``heat`` (B,K,h,w scores), decoded by ``head.gather`` and
    ``head.decode``, as per-image 3D (CameraInstance3DBoxes, bottom centre) and 2D
    InstanceData above ``score_thr``. Shared by SKDHead and SMOKESKDHead."""
    b, _, h, w = heat.shape
    k = min(topk, h * w)
    scores, _, labels, ys, xs = get_topk_from_heatmap(heat, k=k)
    cam2img = sample_cam2img(data_samples, heat.device)
    batch_idx = torch.arange(b, device=heat.device)[:, None].expand(b, k).reshape(-1)
    cells = torch.stack([xs.reshape(-1), ys.reshape(-1)], 1).long()
    dec = head.decode(head.gather(preds, batch_idx, cells), cells, labels.reshape(-1).long(),
                      cam2img[batch_idx], input_shape[0] / h)
    boxes = torch.cat([gravity_to_bottom(dec['center'], dec['dims']), dec['dims'],
                       dec['yaw'][:, None]], 1).reshape(b, k, 7)
    box2d = dec['box2d'].reshape(b, k, 4)
    results_3d, results_2d = [], []
    for i in range(b):
        keep = scores[i] > score_thr
        inst3d, inst2d = InstanceData(), InstanceData()
        inst3d.bboxes_3d = CameraInstance3DBoxes(boxes[i][keep], box_dim=7)
        inst3d.scores_3d = inst2d.scores = scores[i][keep]
        inst3d.labels_3d = inst2d.labels = labels[i][keep].long()
        inst2d.bboxes = box2d[i][keep]
        results_3d.append(inst3d)
        results_2d.append(inst2d)
    return results_3d, results_2d
