"""SMOKESKDHead: mmdet3d's SMOKE head trained weakly, as a branch of SKDWM3D.

SMOKE (``SMOKEMono3DHead`` + ``SMOKECoder``) learns its 3D regression from 3D labels: its loss
compares the corners of the decoded boxes with the labelled ones. This subclass keeps SMOKE's
layers, its forward pass (sigmoid heatmap, ``sigmoid - 0.5`` dimension offsets, normalised
orientation vector) and its coder, and swaps the 3D loss for the weak losses of SKD-WM3D: the
regression is decoded through ``SMOKECoder.decode`` at the 2D ground-truth centres and the
boxes go into :class:`~mmdet3d_skd.models.weak_losses.WeakMono3DLoss` with the pseudo points of
the depth map. The heatmap peaks at the 2D box centres (SMOKE's peaks at the projected 3D
centres, which are 3D labels).

What SMOKE lacks and is added here: five extra regression channels, the depth log-variance
``s`` (Laplacian depth loss, and the teacher confidence of ``UncertaintyDistillLoss``) and the
2D box ``(l, t, r, b)`` in cells from the cell centre (L1 + GIoU to the label boxes, as
SKDHead). Channels of ``bbox_pred``: ``0`` depth offset, ``1:3`` offset of the projected 3D
centre (cells), ``3:6`` dimension log-ratios, ``6:8`` orientation vector (SMOKE's layout, so a
SMOKE checkpoint loads into ``conv_regs.0`` with ``group_reg_dims=(8, 5)``), ``8`` depth
log-variance, ``9:13`` 2D box.

Frame. The project's convention is that ``cam2img`` maps the camera to the network input image
(DepthAffineResize with its default ``update_cam2img=True``; the teacher's DepthFusionNeck and
the pseudo points need exactly that matrix). SMOKE's convention is the original image's matrix
``K`` plus ``trans_mat`` ``T`` (original image -> feature grid); the two are the same projection:
with ``S = diag(stride, stride, 1)``, ``cam2img = S T K``, and decoding through ``SMOKECoder``
with ``(cam2img, S^-1)`` equals decoding with ``(K, T)``. The head decodes with
``(cam2img, S^-1)`` in training and inference, so it needs no ``trans_mat``, and it refuses
samples whose ``cam2img`` was left in SMOKE's frame (``trans_mat`` present without
``ori_cam2img``, i.e. ``AffineResize`` or ``DepthAffineResize(update_cam2img=False)``).

The targets are SKDHead's (:func:`mmdet3d_skd.models.targets.assign_targets`), so a SMOKE
teacher and a SMOKE student (or one of each) see the same heatmaps, cells and pseudo points.
"""
from typing import Dict, List, Sequence, Tuple

import torch
from mmdet.models.utils.gaussian_target import get_local_maximum
from mmengine.structures import InstanceData
from torch import Tensor

from mmdet3d.models.dense_heads import SMOKEMono3DHead
from mmdet3d.registry import MODELS
from mmdet3d_skd.models.geometry import to_4x4
from mmdet3d_skd.models.skd_head import SKDHead, detections_from_heatmap
from mmdet3d_skd.models.targets import Targets, assign_targets, input_hw

# (name, first channel, last channel + 1) of ``bbox_pred``
LAYOUT = (('depth', 0, 1), ('offset', 1, 3), ('dims', 3, 6), ('orient', 6, 8),
          ('depth_logvar', 8, 9), ('bbox2d', 9, 13))
REG_CHANNELS = 13


def check_input_frame(data_samples: Sequence) -> None:
    """Raise if a sample's ``cam2img`` is still the original image's (SMOKE's frame)."""
    for i, s in enumerate(data_samples):
        meta = s.metainfo
        if 'trans_mat' in meta and 'ori_cam2img' not in meta:
            raise ValueError(
                f"SMOKESKDHead: sample {meta.get('img_path', i)} has SMOKE's trans_mat but a "
                'cam2img that was not updated to the network input image (AffineResize or '
                'DepthAffineResize(update_cam2img=False)); use DepthAffineResize with '
                'update_cam2img=True (the default) in the pipeline.')


@MODELS.register_module()
class SMOKESKDHead(SMOKEMono3DHead):
    """SMOKE's head with the weak 3D losses of SKD-WM3D (see the module docstring).

    Decoding (``SMOKECoder``, at cell ``c`` with raw outputs ``d, o, q, v``): depth
    ``z = base_depth[0] + base_depth[1] * d`` (``d`` clamped so that ``z`` lies in
    ``depth_range``); gravity centre = back-projection of ``(c + o) * stride`` at ``z`` through
    ``cam2img``; dims ``= base_dims[label] * exp(q)``; yaw from SMOKE's orientation vector and
    the ray. ``base_dims`` are the class size priors of the weak losses and the pseudo points.

    Args:
        supervision: only 'weak' (SMOKE's own head is the fully supervised one).
        max_logvar: bound of ``|s|``.
        min_overlap: Gaussian radius parameter of the heatmap targets.
        depth_range: (min, max) metres of the decoded depth.
        loss_giou2d: GIoU loss of the 2D boxes; SMOKE's ``loss_cls`` is the heatmap loss and its
            ``loss_bbox`` the L1 loss of the 2D boxes (configure a 'mean' reduction).
        loss_weak3d: WeakMono3DLoss config.
        test_cfg: ``topk``, ``local_max_kernel``, ``score_thr``.
        **kwargs: SMOKEMono3DHead's arguments; ``group_reg_dims`` must sum to 13.
    """
    DEFAULT_TEST_CFG = dict(topk=100, local_max_kernel=3, score_thr=0.25)

    def __init__(self,
                 *args,
                 supervision: str = 'weak',
                 max_logvar: float = 5.0,
                 min_overlap: float = 0.7,
                 depth_range: Tuple[float, float] = (0.5, 200.0),
                 loss_giou2d: dict = dict(type='mmdet.GIoULoss', loss_weight=1.0),
                 loss_weak3d: dict = dict(type='WeakMono3DLoss'),
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if supervision != 'weak':
            raise ValueError(f"SMOKESKDHead: supervision must be 'weak' (use mmdet3d's "
                             f'SMOKEMono3DHead for 3D labels), got {supervision!r}')
        if sum(self.group_reg_dims) != REG_CHANNELS:
            raise ValueError(f'SMOKESKDHead: group_reg_dims must sum to {REG_CHANNELS} (SMOKE\'s '
                             f'8 + depth log-variance + 2D box), got {self.group_reg_dims}')
        if list(self.dim_channel) != [3, 4, 5] or list(self.ori_channel) != [6, 7]:
            raise ValueError('SMOKESKDHead: dim_channel must be [3, 4, 5] and ori_channel '
                             f'[6, 7] (SMOKE\'s layout), got {self.dim_channel}, '
                             f'{self.ori_channel}')
        prior = torch.as_tensor(self.bbox_coder.base_dims, dtype=torch.float32)
        if prior.shape != (self.num_classes, 3) or (prior <= 0).any():
            raise ValueError(f'SMOKESKDHead: bbox_coder.base_dims must be {self.num_classes} '
                             f'positive (l, h, w) rows; got {self.bbox_coder.base_dims}')
        if not 0 < depth_range[0] < depth_range[1]:
            raise ValueError(f'SMOKESKDHead: depth_range must be 0 < min < max, '
                             f'got {depth_range}')
        self.register_buffer('dims_prior', prior, persistent=False)
        self.supervision = supervision
        self.max_logvar = float(max_logvar)
        self.min_overlap = float(min_overlap)
        self.depth_range = tuple(float(d) for d in depth_range)
        self.test_cfg = dict(self.DEFAULT_TEST_CFG, **(self.test_cfg or {}))
        self.loss_giou2d = MODELS.build(loss_giou2d)
        self.loss_weak3d = MODELS.build(loss_weak3d)
        self._init_bbox2d_bias()

    def _init_bbox2d_bias(self) -> None:
        """2D box sides start at one cell (a zero box has no GIoU gradient)."""
        start = 0
        for conv, dim in zip(self.conv_regs, self.group_reg_dims):
            lo, hi = max(9, start), min(REG_CHANNELS, start + dim)
            if lo < hi:
                torch.nn.init.constant_(conv.bias[lo - start:hi - start], 1.0)
            start += dim

    def init_weights(self) -> None:
        super().init_weights()
        self._init_bbox2d_bias()

    # ------------------------------------------------------------------ forward / decode
    def forward(self, x, cam2img=None, input_hw=None, depth=None) -> Dict[str, Tensor]:
        """SMOKE's forward on ``x`` (B,C,h,w) (or a tuple: its first map), split into named
        maps: ``heatmap`` (sigmoid scores) and the ``LAYOUT`` channels. ``cam2img``,
        ``input_hw`` and ``depth`` (SKDHead's signature) are not used: SMOKE's head sees the
        feature only."""
        if isinstance(x, (list, tuple)):
            x = x[0]
        cls_score, bbox_pred = self.forward_single(x)
        out = {'heatmap': cls_score}
        out.update({name: bbox_pred[:, a:b] for name, a, b in LAYOUT})
        return out

    gather = staticmethod(SKDHead.gather)

    def decode(self, raw: Dict[str, Tensor], cells: Tensor, labels: Tensor, cam2img: Tensor,
               stride: float) -> Dict[str, Tensor]:
        """Per-instance boxes through ``SMOKECoder.decode`` with ``(cam2img, diag(1/stride))``.

        Returns ``center`` (gravity, camera frame), ``dims`` (l,h,w), ``yaw``, ``depth``,
        ``depth_logvar``, ``dims_log``, ``orient``, ``uv`` (projected centre, pixels) and
        ``box2d`` (pixels), as SKDHead.decode.
        """
        b0, b1 = self.bbox_coder.base_depth
        lo, hi = self.depth_range
        d = raw['depth'][:, 0].clamp((lo - b0) / b1, (hi - b0) / b1)
        reg = torch.cat([d[:, None], raw['offset'], raw['dims'], raw['orient']], 1)
        points = cells.to(reg.dtype)
        n = reg.shape[0]
        if n:
            trans = torch.diag(reg.new_tensor([1.0 / stride, 1.0 / stride, 1.0]))
            center, dims, yaw = self.bbox_coder.decode(
                reg, points, labels, to_4x4(cam2img).to(reg), trans.expand(n, 3, 3))
            yaw = yaw[:, 0]
        else:  # SMOKECoder divides by the instance count; empty but still on the graph
            center, dims, yaw = reg[:, :3] * 0, reg[:, 3:6] * 0, reg[:, 0] * 0
        p = (points + 0.5) * stride
        ltrb = raw['bbox2d'].clamp(min=0) * stride
        return dict(center=center, dims=dims, yaw=yaw, depth=self.bbox_coder._decode_depth(d),
                    depth_logvar=raw['depth_logvar'][:, 0].clamp(-self.max_logvar,
                                                                 self.max_logvar),
                    dims_log=raw['dims'], orient=raw['orient'],
                    uv=(points + raw['offset']) * stride,
                    box2d=torch.cat([p - ltrb[:, :2], p + ltrb[:, 2:]], 1))

    # ------------------------------------------------------------------ targets / losses
    def get_targets(self, data_samples: Sequence, feat_shape: Tuple[int, int],
                    input_shape: Tuple[int, int], device) -> Targets:
        """SKDHead's targets (:func:`mmdet3d_skd.models.targets.assign_targets`: Gaussian
        peaks at the 2D box centres, per-instance cells, labels, boxes and input-image
        ``cam2img``)."""
        check_input_frame(data_samples)
        return assign_targets(data_samples, feat_shape, input_shape, device, self.num_classes,
                              self.min_overlap, self.supervision, type(self).__name__)

    def loss_by_feat(self, preds: Dict[str, Tensor], targets: Targets,
                     pseudo=None) -> Dict[str, Tensor]:
        """SMOKE's ``loss_cls`` on the heatmap, ``loss_bbox`` (L1) + GIoU on the 2D boxes and
        the weak 3D losses on the decoded boxes (``pseudo``: their PseudoPoints)."""
        if pseudo is None:
            raise ValueError('SMOKESKDHead needs the pseudo points of the depth map; is a depth '
                             'map loaded in the training pipeline?')
        num = max(1, len(targets.labels))
        losses = {'loss_heatmap': self.loss_cls(preds['heatmap'], targets.heatmap,
                                                avg_factor=num)}
        raw = self.gather(preds, targets.batch_idx, targets.cells)
        dec = self.decode(raw, targets.cells, targets.labels, targets.cam2img, targets.stride)
        p = (targets.cells.to(targets.boxes2d) + 0.5) * targets.stride
        ltrb = torch.cat([p - targets.boxes2d[:, :2], targets.boxes2d[:, 2:] - p], 1)
        losses['loss_bbox2d'] = self.loss_bbox(raw['bbox2d'], ltrb / targets.stride,
                                               avg_factor=num)
        losses['loss_giou2d'] = self.loss_giou2d(dec['box2d'], targets.boxes2d, avg_factor=num)
        losses.update(self.loss_weak3d(dec, pseudo, targets.boxes2d, targets.cam2img,
                                       self.dims_prior[targets.labels],
                                       img_shape=input_hw(targets)))
        return losses

    # ------------------------------------------------------------------ inference
    def predict_by_feat(self, preds: Dict[str, Tensor], data_samples: Sequence,
                        input_shape: Tuple[int, int]) -> Tuple[List[InstanceData],
                                                               List[InstanceData]]:
        """Top-k heatmap peaks decoded as above: 3D (CameraInstance3DBoxes) and 2D results."""
        check_input_frame(data_samples)
        cfg = self.test_cfg
        heat = get_local_maximum(preds['heatmap'], cfg['local_max_kernel'])
        return detections_from_heatmap(self, heat, preds, data_samples, input_shape,
                                       cfg['topk'], cfg['score_thr'])


__all__ = ['SMOKESKDHead', 'check_input_frame', 'LAYOUT']
