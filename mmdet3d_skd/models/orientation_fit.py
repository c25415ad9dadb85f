"""Orientation of an object from the bird's-eye-view shape of its pseudo points.

Two steps, both targets (no gradient): :func:`points_orientation`, the L-shape fit of the
points' BEV rectangle (a yaw modulo pi/2: a rectangle cannot tell its length from its width),
and :func:`resolve_length_axis`, which turns it into a yaw modulo pi with the class size prior
(which visible edge is the length). The weak orientation term
(:func:`~mmdet3d_skd.models.weak_losses.orientation_loss`) compares predictions with the result;
:mod:`.pseudo_points` calls both. mmdet3d has no such fit (its point code assumes LiDAR boxes).
"""
import math
from typing import Tuple

import torch
from torch import Tensor

from .geometry import wrap_angle

__all__ = ['points_orientation', 'resolve_length_axis']

_BIG = 1e4  # stand-in for "infinitely far" distances that must stay finite


@torch.no_grad()
def points_orientation(points: Tensor,
                       mask: Tensor,
                       num_angles: int = 90,
                       d0: float = 0.05,
                       min_points: int = 5) -> Tuple[Tensor, Tensor]:
    """Yaw of each point set's BEV rectangle by L-shape fitting, modulo ``pi/2``.

    Search-based L-shape fit (closeness criterion of Zhang et al., "Efficient L-shape fitting
    for vehicle detection using laser scanners", IV 2017): for each candidate direction
    ``theta`` in ``[0, pi/2)`` the BEV points ``(x, z)`` are expressed on the axes
    ``e1 = (cos theta, sin theta)``, ``e2 = (-sin theta, cos theta)``; each point's distance to the
    nearest side of the axis-aligned bounding rectangle is ``d_i`` and the score is
    ``sum_i 1 / max(d_i, d0)``. The best axis ``e1`` is a box axis; the box's length axis
    ``(cos ry, -sin ry)`` gives ``ry = -theta``. A rectangle cannot tell its length axis from its
    width axis from shape alone, so ``yaw_obs`` is returned modulo ``pi/2``, in
    ``[-pi/4, pi/4)``; the ``pi`` (heading) ambiguity is inherent too.

    ``conf = (S_max - S_mean) / S_max`` (0 for a shapeless blob, towards 1 for a crisp
    L or line), times ``0`` for rows with fewer than ``min_points`` points.

    Returns:
        ``yaw_obs (N,)``, ``conf (N,)`` in ``[0, 1]``; no gradient.
    """
    mask = mask.bool()
    dtype = points.dtype if points.is_floating_point() else torch.float32
    bev = torch.stack([points[..., 0], points[..., 2]], dim=-1).to(dtype)  # (N, P, 2)
    n_pts = mask.sum(-1)
    # centre for numerical range
    mean = (bev * mask.unsqueeze(-1)).sum(1) / n_pts.clamp(min=1).unsqueeze(-1).to(dtype)
    bev = torch.where(mask.unsqueeze(-1), bev - mean.unsqueeze(1), torch.zeros_like(bev))
    theta = torch.arange(num_angles, dtype=dtype, device=points.device) * (
        0.5 * math.pi / num_angles)
    c, s = torch.cos(theta), torch.sin(theta)  # (K,)
    x, z = bev[..., 0].unsqueeze(1), bev[..., 1].unsqueeze(1)  # (N, 1, P)
    c1 = x * c[:, None] + z * s[:, None]  # (N, K, P)
    c2 = -x * s[:, None] + z * c[:, None]
    m = mask.unsqueeze(1)
    big = torch.full_like(c1, _BIG)

    def _dist(v):
        lo = torch.where(m, v, big).min(-1, keepdim=True).values
        hi = torch.where(m, v, -big).max(-1, keepdim=True).values
        return torch.minimum(v - lo, hi - v)

    d = torch.minimum(_dist(c1), _dist(c2)).clamp(min=d0)
    score = torch.where(m, 1.0 / d, torch.zeros_like(d)).sum(-1)  # (N, K)
    best, idx = score.max(-1)
    yaw = wrap_angle(-theta[idx], 0.5 * math.pi)
    conf = ((best - score.mean(-1)) / best.clamp(min=1e-12)).clamp(0, 1)
    conf = torch.where(n_pts >= max(min_points, 2), conf, torch.zeros_like(conf))
    return yaw, conf


def resolve_length_axis(yaw_raw: Tensor, spread_a: Tensor, spread_b: Tensor,
                        prior_l: Tensor, prior_w: Tensor) -> Tensor:
    """Turn a modulo-``pi/2`` yaw into a modulo-``pi`` one with the class prior.

    ``spread_a`` / ``spread_b``: the points' BEV extent along axis ``a = (cos ry, -sin ry)``
    (the length axis if ``yaw_raw`` is right) and the perpendicular axis ``b``. With
    ``tau = (l + w) / 2``: a face longer than ``tau`` is a long side; a single visible face
    (the other spread ``< w / 2``) shorter than ``tau`` is an end, so the length axis is the
    other one; otherwise the longer spread is the length axis. Returns yaw in ``[-pi/2, pi/2)``.
    """
    tau = 0.5 * (prior_l + prior_w)
    a_longer = spread_a >= spread_b
    long_s = torch.maximum(spread_a, spread_b)
    short_s = torch.minimum(spread_a, spread_b)
    single_end = (long_s < tau) & (short_s < 0.5 * prior_w)
    a_is_length = torch.where(single_end, ~a_longer, a_longer)
    yaw = torch.where(a_is_length, yaw_raw, yaw_raw + 0.5 * math.pi)
    return wrap_angle(yaw, math.pi)
