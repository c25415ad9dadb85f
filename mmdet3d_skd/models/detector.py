"""SKDWM3D: the self-knowledge-distillation detector (teacher DSN + student MDN, one encoder)."""
from typing import Dict, Optional, Sequence

import torch
from torch import Tensor, nn

from mmdet3d.models.detectors.single_stage_mono3d import SingleStageMono3DDetector
from mmdet3d.registry import MODELS
from .grad_scale import scale_grad
from .pseudo_points import batch_pseudo_points
from .skd_head import FULL_3D_KEYS
from .targets import Targets, sample_cam2img

BRANCHES = ('teacher', 'student', 'distill')


def boxes_to_original_image(boxes: Tensor, metainfo: dict) -> Tensor:
    """2D boxes (N,4) of the network input mapped back to the original image.

    The geometric transforms update ``cam2img`` = A @ ``ori_cam2img`` with A the image affine
    (scale and translation); the KITTI metric's 2D table compares with the original labels,
    so the boxes go through A^-1. Without ``ori_cam2img`` the boxes are returned unchanged.
    """
    if 'ori_cam2img' not in metainfo or len(boxes) == 0:
        return boxes
    k = torch.as_tensor(metainfo['cam2img'], dtype=torch.float64)[:3, :3]
    k0 = torch.as_tensor(metainfo['ori_cam2img'], dtype=torch.float64)[:3, :3]
    a_inv = (k0 @ torch.linalg.inv(k)).to(boxes)  # A^-1 = K0 K^-1
    pts = boxes.reshape(-1, 2, 2)
    pts = pts @ a_inv[:2, :2].T + a_inv[:2, 2]
    return torch.cat([pts.min(1)[0], pts.max(1)[0]], 1)


ATTRIBUTES = ('depth', 'offset', 'dims', 'orient')  # response-distilled, at GT centres


@MODELS.register_module()
class SKDWM3D(SingleStageMono3DDetector):
    """SKD-WM3D: weakly supervised monocular 3D detection with a single-view image.

    One shared encoder (backbone + neck) gives F_G. Training:
      - teacher (DSN, training only): F_3D = teacher_neck(g_T(F_G), D, K), preds_T = head_T(F_3D);
      - student (MDN): preds_S = head_S(g_S(F_G));
      - distillation: the student's predictions on g_D(F_G) at the 2D GT centres towards the
        teacher's (detached), per attribute (``ATTRIBUTES``), and adapter(g_D(F_G)) towards the
        teacher's F_3D on foreground cells, both through ``distill_loss``
        (UncertaintyDistillLoss, weighted by the teacher's depth uncertainty).
    g_T, g_S, g_D are gradient-scaling identities with the coefficients k_teacher, k_student,
    k_distill (1.0 unless a GradModulationHook sets them): they scale only what each branch
    sends back into the shared encoder. Inference runs the student alone, from the image only.

    Without ``teacher_neck``/``teacher_head`` it is the plain student detector (the baselines).

    Args:
        backbone, neck: the shared encoder (any mmdet/mmdet3d configs).
        bbox_head: the student's SKDHead.
        teacher_neck: DepthFusionNeck config, or None.
        teacher_head: the teacher's SKDHead config; None with ``share_head=True`` reuses the
            student's weights.
        distill_loss: UncertaintyDistillLoss config (response terms), or None.
        feature_distill_loss: the same for the feature term, or None.
        pseudo_points: keyword arguments of ``batch_pseudo_points`` (weak mode).
        test_cfg: ``branch='student'`` (default) or ``'teacher'`` (needs depth maps at test
            time; for measuring what the depth branch knows).
    """

    def __init__(self,
                 backbone: dict,
                 bbox_head: dict,
                 neck: Optional[dict] = None,
                 teacher_neck: Optional[dict] = None,
                 teacher_head: Optional[dict] = None,
                 share_head: bool = False,
                 distill_loss: Optional[dict] = None,
                 feature_distill_loss: Optional[dict] = None,
                 pseudo_points: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg=None) -> None:
        super().__init__(backbone=backbone, neck=neck, bbox_head=bbox_head,
                         train_cfg=train_cfg, test_cfg=test_cfg,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.supervision = self.bbox_head.supervision
        self.test_branch = (test_cfg or {}).get('branch', 'student')
        if self.test_branch not in ('student', 'teacher'):
            raise ValueError(f"SKDWM3D: test_cfg.branch must be 'student' or 'teacher', "
                             f'got {self.test_branch!r}')
        self.teacher_neck = MODELS.build(teacher_neck) if teacher_neck else None
        if teacher_head is not None:
            self.teacher_head = MODELS.build(teacher_head)
        elif share_head and self.teacher_neck is not None:
            self.teacher_head = self.bbox_head
        else:
            self.teacher_head = None
        if (self.teacher_neck is None) != (self.teacher_head is None):
            raise ValueError('SKDWM3D: the teacher needs both teacher_neck and teacher_head '
                             '(or share_head=True)')
        self.distill_loss = MODELS.build(distill_loss) if distill_loss else None
        self.feature_distill_loss = (MODELS.build(feature_distill_loss)
                                     if feature_distill_loss else None)
        if (self.distill_loss or self.feature_distill_loss) and not self.with_teacher:
            raise ValueError('SKDWM3D: distillation needs a teacher (teacher_neck + head)')
        self.adapter = None
        if self.feature_distill_loss is not None:
            c = self.teacher_neck.proj.out_channels if hasattr(self.teacher_neck, 'proj') \
                else self.teacher_neck.fuse.out_channels
            self.adapter = nn.Conv2d(c, c, 1)  # training only: student F_G -> teacher F_3D
        self.pseudo_cfg = dict(pseudo_points or {})
        self.transfer = {name: 1.0 for name in BRANCHES}

    @property
    def with_teacher(self) -> bool:
        return self.teacher_head is not None

    def set_transfer_coefficients(self, teacher: float = 1.0, student: float = 1.0,
                                  distill: float = 1.0) -> None:
        """Set k_teacher, k_student, k_distill (called by GradModulationHook)."""
        self.transfer = dict(teacher=float(teacher), student=float(student),
                             distill=float(distill))

    # ------------------------------------------------------------------ helpers
    def _check_weak(self, data_samples: Sequence) -> None:
        """Guard: in weak mode no 3D target may reach the loss."""
        for s in data_samples:
            leaked = [k for k in FULL_3D_KEYS if k in s.gt_instances_3d]
            leaked += [k for k in s.gt_instances.keys() if k not in ('bboxes', 'labels')]
            if leaked:
                raise RuntimeError(
                    f"SKDWM3D (weak supervision): 3D targets {leaked} reached the loss for "
                    f"sample {s.metainfo.get('img_path', '?')}. Use WeakKittiDataset and "
                    'LoadAnnotations3D(with_bbox_3d=False, with_label_3d=False, '
                    'with_bbox_depth=False) in the training pipeline.')

    def _depth_maps(self, batch_inputs: dict) -> Tensor:
        depth = batch_inputs.get('depth_maps')
        if depth is None:
            raise ValueError('SKDWM3D: the training batch has no depth map. Add LoadDepthMap '
                             "to the training pipeline, pack it with PackSKDInputs (key "
                             "'depth_map') and use SKDDataPreprocessor.")
        return depth

    def _response(self, head, preds: Dict[str, Tensor], t: Targets) -> Dict[str, Tensor]:
        """The distilled attributes of a branch at the GT centres, (N, d) each."""
        raw = head.gather(preds, t.batch_idx, t.cells)
        dec = head.decode(raw, t.cells, t.labels, t.cam2img, t.stride)
        return dict(depth=torch.log(dec['depth'])[:, None], offset=raw['offset'],
                    dims=dec['dims_log'], orient=dec['orient'],
                    logvar=dec['depth_logvar'])

    # ------------------------------------------------------------------ training
    def loss(self, batch_inputs: dict, batch_data_samples: Sequence) -> Dict[str, Tensor]:
        """Teacher, student and distillation losses, as separately named entries."""
        if self.supervision in ('weak', '2d'):  # '2d': the 2D-only pretraining
            self._check_weak(batch_data_samples)
        feat = self.extract_feat(batch_inputs)[0]
        input_hw = tuple(batch_inputs['imgs'].shape[-2:])
        targets = self.bbox_head.get_targets(batch_data_samples, feat.shape[-2:], input_hw,
                                             feat.device)
        pseudo = None
        need_depth = self.supervision == 'weak' or self.with_teacher
        depth = self._depth_maps(batch_inputs) if need_depth else None
        if self.supervision == 'weak':
            pseudo = batch_pseudo_points(depth, targets, self.bbox_head.dims_prior,
                                         **self.pseudo_cfg)
        k = self.transfer
        losses = {}
        cam2img = sample_cam2img(batch_data_samples, feat.device)
        preds_s = self.bbox_head(scale_grad(feat, k['student']), cam2img, input_hw)
        student = self.bbox_head.loss_by_feat(preds_s, targets, pseudo)
        losses.update({f'student.{n}': v for n, v in student.items()})
        losses['weak_total_student'] = sum(student.values()).detach()
        if not self.with_teacher:
            return losses

        feat_3d = self.teacher_neck(scale_grad(feat, k['teacher']), depth, cam2img, input_hw)
        preds_t = self.teacher_head(feat_3d, cam2img, input_hw, depth=depth)
        teacher = self.teacher_head.loss_by_feat(preds_t, targets, pseudo)
        losses.update({f'teacher.{n}': v for n, v in teacher.items()})
        losses['weak_total_teacher'] = sum(teacher.values()).detach()

        if self.distill_loss is None and self.feature_distill_loss is None:
            return losses
        # The student's predictions for distillation go through g_D; when k_D == k_S the
        # gradients are identical to a second pass, so the first pass is reused.
        feat_d = scale_grad(feat, k['distill'])
        if self.distill_loss is not None and len(targets.labels):
            preds_d = preds_s if k['distill'] == k['student'] else self.bbox_head(
                feat_d, cam2img, input_hw)
            stu = self._response(self.bbox_head, preds_d, targets)
            with torch.no_grad():
                tea = self._response(self.teacher_head, preds_t, targets)
            for name in ATTRIBUTES:
                losses[f'distill.loss_{name}'] = self.distill_loss(
                    stu[name], tea[name], log_var=tea['logvar'])
        elif self.distill_loss is not None:
            for name in ATTRIBUTES:
                losses[f'distill.loss_{name}'] = preds_s['depth'].sum() * 0
        if self.feature_distill_loss is not None:
            losses['distill.loss_feature'] = self._feature_distill(
                self.adapter(feat_d), feat_3d.detach(), targets, preds_t)
        return losses

    def _feature_distill(self, student: Tensor, teacher: Tensor, targets: Targets,
                         preds_t: Dict[str, Tensor]) -> Tensor:
        """Adapter(F_G) -> F_3D on foreground cells (Gaussian mask of the 2D boxes)."""
        mask = targets.heatmap.max(1)[0]  # (B,h,w)
        fg = mask > 0.05
        if not fg.any():
            return student.sum() * 0
        s = student.permute(0, 2, 3, 1)[fg]
        t = teacher.permute(0, 2, 3, 1)[fg]
        logvar = preds_t['depth_logvar'][:, 0].detach()[fg].clamp(
            -self.teacher_head.max_logvar, self.teacher_head.max_logvar)
        return self.feature_distill_loss(s, t, log_var=logvar, weight=mask[fg])

    # ------------------------------------------------------------------ inference
    def predict(self, batch_inputs: dict, batch_data_samples: Sequence, **kwargs):
        """Student-only inference from the image (no depth map); teacher if asked."""
        feat = self.extract_feat(batch_inputs)[0]
        input_hw = tuple(batch_inputs['imgs'].shape[-2:])
        head = self.bbox_head
        cam2img = sample_cam2img(batch_data_samples, feat.device)
        if self.test_branch == 'teacher':
            if not self.with_teacher:
                raise ValueError('SKDWM3D: test_cfg.branch="teacher" but there is no teacher')
            depth = self._depth_maps(batch_inputs)
            feat = self.teacher_neck(feat, depth, cam2img, input_hw)
            preds = self.teacher_head(feat, cam2img, input_hw, depth=depth)
            head = self.teacher_head
        else:
            preds = head(feat, cam2img, input_hw)
        res3d, res2d = head.predict_by_feat(preds, batch_data_samples, input_hw)
        for inst, sample in zip(res2d, batch_data_samples):
            inst.bboxes = boxes_to_original_image(inst.bboxes, sample.metainfo)
        return self.add_pred_to_datasample(batch_data_samples, res3d, res2d)

    def _forward(self, batch_inputs: dict, batch_data_samples=None):
        """Raw student prediction maps (for FLOP counting and export)."""
        feat = self.extract_feat(batch_inputs)[0]
        cam2img = None
        if batch_data_samples is not None:
            cam2img = sample_cam2img(batch_data_samples, feat.device)
        return self.bbox_head(feat, cam2img, tuple(batch_inputs['imgs'].shape[-2:]))
