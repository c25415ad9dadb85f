"""Orientation of an object from the bird's-eye-view shape of its pseudo points.

Two steps, both targets (no gradient): :func:`points_orientation`, the L-shape fit of the
points' BEV rectangle (a yaw modulo pi/2: a rectangle cannot tell its length from its width),
and :func:`resolve_length_axis`, which turns it into a yaw modulo pi with the class size prior
(which visible edge is the length). Or, in one step, :func:`fit_box_yaw`: the class-prior box
placed on the points (:func:`prior_box_centre`) at every candidate yaw, scored by how well its
outline holds the points and how well its projection spans the 2D box's width. The weak
orientation term (:func:`~mmdet3d_skd.models.weak_losses.orientation_loss`) compares
predictions with the result; :mod:`.pseudo_points` calls these. mmdet3d has no such fit (its
point code assumes LiDAR boxes).
"""
import math
from typing import Optional, Tuple

import torch
from torch import Tensor

from .geometry import (bev_box_corners, masked_quantile, project_points, to_box_bev,
                       wrap_angle)

__all__ = ['points_orientation', 'resolve_length_axis', 'prior_box_centre', 'fit_box_yaw']

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


def prior_box_centre(points: Tensor, mask: Tensor, yaw: Tensor, prior_l: Tensor,
                     prior_w: Tensor, q: float) -> Tensor:
    """BEV centre ``(N, K, 2)`` as camera ``(x, z)`` of the prior box ``l x w`` at each of ``K``
    yaws ``(N, K)``, placed on the points ``(N, P, 3)`` over ``mask (N, P)``.

    On the box axes ``a = (cos ry, -sin ry)`` (length) and ``b = (sin ry, cos ry)`` of the
    ``(x, z)`` plane the camera (the origin) sees the low end of an axis when the points' mean
    lies above 0: that face sits at the points' ``q`` quantile, the centre ``l / 2`` beyond it
    (else at the ``1 - q`` quantile, the centre ``l / 2`` before it); the same on ``b`` with
    ``w``. ``q`` is a robust minimum against depth noise, like ``surface_quantile``.
    """
    N, K = yaw.shape
    P = points.shape[1]
    c, s = torch.cos(yaw)[..., None], torch.sin(yaw)[..., None]  # (N, K, 1)
    px, pz = points[:, None, :, 0], points[:, None, :, 2]  # (N, 1, P)
    m = mask.bool()[:, None].expand(N, K, P).reshape(N * K, P)
    n = mask.sum(-1).clamp(min=1)[:, None]  # (N, 1)

    def face_centre(v, half):  # v (N, K, P) -> (N, K)
        mean = (v * mask[:, None]).sum(-1) / n
        flat = v.reshape(N * K, P)
        lo = masked_quantile(flat, m, q).reshape(N, K)
        hi = masked_quantile(flat, m, 1.0 - q).reshape(N, K)
        return torch.where(mean > 0, lo + half, hi - half)

    ca = face_centre(px * c - pz * s, 0.5 * prior_l[:, None])
    cb = face_centre(px * s + pz * c, 0.5 * prior_w[:, None])
    c, s = c[..., 0], s[..., 0]
    return torch.stack([ca * c + cb * s, -ca * s + cb * c], dim=-1)


@torch.no_grad()
def fit_box_yaw(points: Tensor, mask: Tensor, prior_l: Tensor, prior_w: Tensor,
                box_u: Tensor, cam2img: Tensor, q: float, width_ok: Optional[Tensor] = None,
                num_angles: int = 90, width_weight: float = 0.5,
                clip: float = 0.5) -> Tensor:
    """Yaw modulo ``pi`` ``(N,)`` of the prior box that best fits the points and the 2D box.

    For every candidate yaw in ``[0, pi)`` (``num_angles`` steps) the prior box is placed on the
    points (:func:`prior_box_centre`); its score is the points' mean distance to the box
    outline (clipped at ``clip`` m: far points are noise, not evidence) plus ``width_weight``
    times the relative error of the width of its projection against the 2D box's
    ``box_u = (u1, u2)`` (a projected box spans about ``l`` seen from the side and ``w`` from
    an end, whatever the depth: this tells the length axis where the points' shape cannot,
    e.g. when only one face is seen). ``width_ok`` (N,) false drops the width term (boxes cut
    by the image border). Rows without points get yaw 0.

    Args:
        points, mask: ``(N, P, 3)`` camera-frame points and ``(N, P)`` their mask.
        prior_l, prior_w: ``(N,)`` class-prior length and width.
        box_u: ``(N, 2)`` the 2D boxes' ``u1, u2`` in the frame of ``cam2img``.
        cam2img: 3x3 / 3x4 / 4x4 projection of the image.
    """
    mask = mask.bool()
    N, P = mask.shape
    dtype = points.dtype
    yaw = (torch.arange(num_angles, dtype=dtype, device=points.device) *
           (math.pi / num_angles))[None].expand(N, num_angles)
    centre = prior_box_centre(points, mask, yaw, prior_l, prior_w, q)  # (N, K, 2)
    flat_c = torch.stack([centre[..., 0], torch.zeros_like(centre[..., 0]), centre[..., 1]],
                         -1).reshape(-1, 3)
    flat_y = yaw.reshape(-1)
    dims = torch.stack([prior_l, torch.ones_like(prior_l), prior_w], -1)
    flat_d = dims[:, None].expand(N, num_angles, 3).reshape(-1, 3)
    # points in each candidate box's BEV frame; distance to its outline (inside or out)
    loc = to_box_bev(points[:, None].expand(N, num_angles, P, 3).reshape(-1, P, 3), flat_c,
                     flat_y).abs()
    half = 0.5 * torch.stack([flat_d[:, 0], flat_d[:, 2]], -1)[:, None]  # (NK, 1, 2)
    outside = (loc - half).clamp(min=0).norm(dim=-1)
    inside = (half - loc).min(-1).values.clamp(min=0)
    m = mask[:, None].expand(N, num_angles, P).reshape(-1, P)
    dist = ((outside + inside).clamp(max=clip) * m).sum(-1) / m.sum(-1).clamp(min=1)
    cost = dist.reshape(N, num_angles)
    if width_weight > 0:
        corners = bev_box_corners(flat_c, flat_d, flat_y)  # (NK, 4, 2) as (x, z)
        c3 = torch.stack([corners[..., 0], torch.zeros_like(corners[..., 0]),
                          corners[..., 1].clamp(min=0.1)], -1)
        u = project_points(c3, cam2img)[0][..., 0]
        width = (u.max(-1).values - u.min(-1).values).reshape(N, num_angles)
        box_w = (box_u[:, 1] - box_u[:, 0]).clamp(min=1.0)[:, None]
        werr = (width - box_w).abs() / box_w
        if width_ok is not None:
            werr = werr * width_ok.to(dtype)[:, None]
        cost = cost + width_weight * werr
    best = cost.argmin(-1)
    out = yaw.gather(1, best[:, None])[:, 0]
    return wrap_angle(torch.where(mask.any(-1), out, torch.zeros_like(out)), math.pi)
