"""Gradient-scaling identity used by gradient-targeted transfer modulation.

``y = scale_grad(x, k)`` is the identity in the forward pass (``y == x``) and multiplies the
gradient in the backward pass: ``dL/dx = k * dL/dy``. The detector routes the shared image
feature F_G into each branch through one of these, so a branch's gradient into the shared
encoder is scaled by its coefficient while the branch's own parameters (which sit after the
identity) keep their full gradient.

Written by hand because neither mmengine, mmdet nor mmdet3d provides a gradient-scaling op
(``mmcv`` has none either); it is a three-line ``torch.autograd.Function``.
"""
import math
import numbers

import torch
from torch import Tensor


class _ScaleGrad(torch.autograd.Function):
    """Forward: y = x. Backward: dL/dx = k * dL/dy."""

    @staticmethod
    def forward(ctx, x: Tensor, k: float) -> Tensor:
        ctx.k = k
        # a view, not ``x`` itself: autograd needs a distinct output tensor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        return grad_output * ctx.k, None


def scale_grad(x: Tensor, k: float) -> Tensor:
    """Identity on ``x`` whose backward pass multiplies the incoming gradient by ``k``.

    Args:
        x (Tensor): any tensor.
        k (float): finite gradient multiplier; ``k == 0.0`` stops the gradient (like ``detach``
            but keeping the graph connected). ``x`` itself is returned (no graph node) when
            ``k == 1.0``, under ``torch.no_grad()`` and when ``x`` does not require grad.

    Returns:
        Tensor: a tensor equal to ``x``.
    """
    if isinstance(k, Tensor):
        if k.numel() != 1:
            raise TypeError(f'scale_grad: k must be a scalar, got a tensor of shape '
                            f'{tuple(k.shape)}')
        k = k.item()
    if not isinstance(k, numbers.Real) or not math.isfinite(float(k)):
        raise ValueError(f'scale_grad: k must be a finite real number, got {k!r}')
    k = float(k)
    if k == 1.0 or not (torch.is_grad_enabled() and x.requires_grad):
        # nothing to scale: no gradient will flow through this node
        return x
    return _ScaleGrad.apply(x, k)
