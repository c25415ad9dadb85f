"""Uncertainty-aware self-knowledge distillation loss (teacher DSN -> student MDN)."""
from typing import Optional

import torch
from mmdet.models.losses import l1_loss, smooth_l1_loss
from mmdet.models.losses.utils import weight_reduce_loss
from torch import Tensor, nn

from mmdet3d.registry import MODELS


@MODELS.register_module()
class UncertaintyDistillLoss(nn.Module):
    r"""Margin-tolerant distillation weighted by the teacher's confidence.

    For M pieces of knowledge (rows) with d values each, student ``p`` and teacher ``t``::

        e_jc  = max(0, |p_jc - t_jc| - margin)                 (elementwise)
        l_jc  = penalty(e_jc)              smooth-L1 (``beta``) or L1
        u_jc  = exp(-s_jc)                 s = teacher log-variance, clamped to +-log_var_clamp
        w_jc  = u_jc / (sum_i a_i u_ic / sum_i a_i)             (a = ``weight``, 1 if None)
        loss  = reduce(loss_weight * a_j * w_jc * l_jc)

    so the confidence weights average to 1 over the batch (weighted by ``a``): confident teacher
    knowledge counts more, uncertain knowledge less, and the total amount of supervision does not
    depend on the teacher's overall uncertainty level. ``s`` of shape (M,) is shared by the d
    columns; of shape (M, d) each column is normalised over the batch on its own.
    ``uncertainty='none'`` sets w = 1 (plain distillation). The teacher (``target`` and
    ``log_var``) is always detached: no gradient ever reaches it through this loss.

    The same class serves both uses of SKD-WM3D:

    - response distillation at the 2D ground-truth centres, one call per attribute (depth,
      3D offset, dimensions, orientation): ``pred``/``target`` (M, d) are the student's/teacher's
      head outputs gathered at the M centres, ``log_var`` the teacher's predicted depth
      log-variance there;
    - feature distillation: ``pred`` (M, C) is the student's F_G through a 1x1 adapter and
      ``target`` (M, C) the teacher's F_3D at the M foreground cells, ``weight`` (M,) the Gaussian
      foreground-mask value of each cell (pass ``avg_factor=C * weight.sum()`` for a mask-weighted
      mean), ``log_var`` the teacher's log-variance map at those cells.

    Reduction follows mmdet (``weight_reduce_loss``): 'mean' averages over the M*d elements or
    divides the sum by ``avg_factor``; 'sum'; 'none' returns the (M, d) weighted losses.
    mmdet's ``smooth_l1_loss``/``l1_loss`` compute the penalty; the margin, confidence
    weighting and teacher detaching are what mmdet lacks and are written here.

    Args:
        loss_weight (float): multiplier of the loss.
        margin (float): tolerated absolute difference (no loss below it), >= 0.
        reduction (str): 'mean', 'sum' or 'none'.
        penalty (str): 'smooth_l1' or 'l1'.
        beta (float): smooth-L1 threshold, > 0.
        uncertainty (str): 'teacher' (weight by exp(-teacher log-variance)) or 'none'.
        log_var_clamp (float): the log-variance is clamped to [-log_var_clamp, log_var_clamp].
    """

    _PENALTIES = ('smooth_l1', 'l1')
    _UNCERTAINTIES = ('teacher', 'none')
    _REDUCTIONS = ('none', 'mean', 'sum')

    def __init__(self,
                 loss_weight: float = 1.0,
                 margin: float = 0.0,
                 reduction: str = 'mean',
                 penalty: str = 'smooth_l1',
                 beta: float = 1.0,
                 uncertainty: str = 'teacher',
                 log_var_clamp: float = 10.0) -> None:
        super().__init__()
        if penalty not in self._PENALTIES:
            raise ValueError(f'UncertaintyDistillLoss: penalty must be one of '
                             f'{self._PENALTIES}, got {penalty!r}')
        if uncertainty not in self._UNCERTAINTIES:
            raise ValueError(f'UncertaintyDistillLoss: uncertainty must be one of '
                             f'{self._UNCERTAINTIES}, got {uncertainty!r}')
        if reduction not in self._REDUCTIONS:
            raise ValueError(f'UncertaintyDistillLoss: reduction must be one of '
                             f'{self._REDUCTIONS}, got {reduction!r}')
        if margin < 0:
            raise ValueError(f'UncertaintyDistillLoss: margin must be >= 0, got {margin}')
        if beta <= 0:
            raise ValueError(f'UncertaintyDistillLoss: beta must be > 0, got {beta}')
        if log_var_clamp <= 0:
            raise ValueError(f'UncertaintyDistillLoss: log_var_clamp must be > 0, '
                             f'got {log_var_clamp}')
        self.loss_weight = float(loss_weight)
        self.margin = float(margin)
        self.reduction = reduction
        self.penalty = penalty
        self.beta = float(beta)
        self.uncertainty = uncertainty
        self.log_var_clamp = float(log_var_clamp)

    def confidence_weights(self, log_var: Tensor, shape: torch.Size,
                           weight: Optional[Tensor] = None) -> Tensor:
        """Batch-normalised teacher confidence ``w`` (see the class docstring), shape ``shape``.

        ``log_var`` (M,) or (M, d) is detached; ``weight`` (M, 1) or None.
        """
        s = log_var.detach().to(torch.float32)
        if s.dim() == 1:
            s = s[:, None]
        s = s.clamp(-self.log_var_clamp, self.log_var_clamp).expand(shape)
        # exp(-(s - min s)) <= 1: the shift cancels in the normalisation below
        u = torch.exp(-(s - s.min(dim=0, keepdim=True)[0]))
        a = torch.ones_like(u[:, :1]) if weight is None else weight.detach().to(u.dtype)
        mass = a.sum(dim=0, keepdim=True).clamp(min=torch.finfo(u.dtype).eps)
        mean_u = ((a * u).sum(dim=0, keepdim=True) / mass).clamp(
            min=torch.finfo(u.dtype).eps)
        return u / mean_u

    def forward(self,
                pred: Tensor,
                target: Tensor,
                log_var: Optional[Tensor] = None,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Distillation loss.

        Args:
            pred (Tensor): (M, d) or (M,) student values.
            target (Tensor): same shape, teacher values (detached here).
            log_var (Tensor, optional): (M,), (M, 1) or (M, d) teacher log-variance (detached
                here); required when ``uncertainty='teacher'``, ignored when 'none'.
            weight (Tensor, optional): (M,) extra per-sample weights, e.g. a Gaussian mask.
            avg_factor (float, optional): divisor of the summed loss for 'mean'.
            reduction_override (str, optional): 'none', 'mean' or 'sum'.

        Returns:
            Tensor: the scalar loss, or (M, d) ('none'; (M,) if ``pred`` was (M,)).
        """
        reduction = reduction_override if reduction_override else self.reduction
        if reduction not in self._REDUCTIONS:
            raise ValueError(f'UncertaintyDistillLoss: reduction_override must be one of '
                             f'{self._REDUCTIONS}, got {reduction!r}')
        if pred.shape != target.shape:
            raise ValueError(f'UncertaintyDistillLoss: pred {tuple(pred.shape)} and target '
                             f'{tuple(target.shape)} must have the same shape')
        if pred.dim() not in (1, 2):
            raise ValueError(f'UncertaintyDistillLoss: pred must be (M,) or (M, d), got '
                             f'{tuple(pred.shape)}')
        squeeze = pred.dim() == 1
        p = pred[:, None] if squeeze else pred
        t = target.detach().to(p.dtype)
        t = t[:, None] if squeeze else t
        m = p.shape[0]

        if weight is not None:
            if weight.shape not in ((m,), (m, 1)):
                raise ValueError(f'UncertaintyDistillLoss: weight must be ({m},), got '
                                 f'{tuple(weight.shape)}')
            weight = weight.detach().reshape(m, 1).to(p.dtype)
        if self.uncertainty == 'teacher':
            if log_var is None:
                raise ValueError("UncertaintyDistillLoss(uncertainty='teacher') needs the "
                                 "teacher's log_var; pass it or configure uncertainty='none'")
            if log_var.shape not in ((m,), (m, 1), tuple(p.shape)):
                raise ValueError(f'UncertaintyDistillLoss: log_var must be ({m},) or '
                                 f'{tuple(p.shape)}, got {tuple(log_var.shape)}')

        if m == 0:
            zero = pred.sum() * 0
            return pred * 0 if reduction == 'none' else zero

        err = ((p - t).abs() - self.margin).clamp(min=0)
        zeros = torch.zeros_like(err)
        if self.penalty == 'smooth_l1':
            loss = smooth_l1_loss(err, zeros, beta=self.beta, reduction='none')
        else:
            loss = l1_loss(err, zeros, reduction='none')

        w = weight
        if self.uncertainty == 'teacher':
            conf = self.confidence_weights(log_var, loss.shape, weight).to(loss.dtype)
            w = conf if weight is None else conf * weight
        loss = self.loss_weight * weight_reduce_loss(
            loss, w, reduction=reduction, avg_factor=avg_factor)
        if reduction == 'none' and squeeze:
            loss = loss[:, 0]
        return loss
