"""The ground plane of one image from its depth map (RANSAC + least squares), and the checks
of a depth map, camera matrix and boxes that its users share. Used by the pseudo points
(:mod:`.pseudo_points`: ground rejection) and by the offline depth tool (scale from the camera
height, :func:`mmdet3d_skd.offline.depth_estimators.ground_scale`)."""
import math
from typing import Optional, Tuple

import torch
from torch import Tensor

from .geometry import backproject, to_4x4

__all__ = ['fit_ground_plane', 'sanitize_depth', 'check_depth_inputs']


def sanitize_depth(depth: Tensor, min_depth: float, max_depth: float) -> Tensor:
    """``depth`` with non-finite values and values outside ``[min_depth, max_depth]`` set to 0
    (invalid)."""
    ok = torch.isfinite(depth) & (depth >= min_depth) & (depth <= max_depth)
    return torch.where(ok, depth, torch.zeros_like(depth))


def check_depth_inputs(depth: Tensor, cam2img: Tensor,
                       boxes2d: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """One image's ``(H, W)`` depth, its 4x4 ``cam2img`` and its ``(N, 4)`` boxes (NaN -> 0),
    or ValueError naming the wrong shape."""
    depth = torch.as_tensor(depth)
    if depth.dim() == 3 and depth.shape[0] == 1:
        depth = depth[0]
    if depth.dim() != 2:
        raise ValueError('pseudo_points: depth must be one (H, W) map per image, got shape '
                         f'{tuple(depth.shape)}')
    depth = depth.float() if not depth.is_floating_point() else depth
    cam2img = torch.as_tensor(cam2img, device=depth.device)
    if cam2img.dim() != 2:
        raise ValueError('pseudo_points: cam2img must be one 3x3/3x4/4x4 matrix per image, got '
                         f'shape {tuple(cam2img.shape)}')
    P = to_4x4(cam2img).to(depth.dtype)
    boxes2d = torch.as_tensor(boxes2d, device=depth.device)
    if boxes2d.dim() != 2 or boxes2d.shape[-1] != 4:
        raise ValueError('pseudo_points: boxes2d must be (N, 4) x1y1x2y2, got shape '
                         f'{tuple(boxes2d.shape)}')
    return depth, P, torch.nan_to_num(boxes2d.to(depth.dtype), 0.0, 0.0, 0.0)


def _prior_plane(cam_height: float, dtype, device) -> Tensor:
    return torch.tensor([0.0, -1.0, 0.0, cam_height], dtype=dtype, device=device)


@torch.no_grad()
def fit_ground_plane(depth: Tensor,
                     cam2img: Tensor,
                     exclude_boxes: Optional[Tensor] = None,
                     cam_height: float = 1.65,
                     height_range: Tuple[float, float] = (1.0, 2.5),
                     max_tilt_deg: float = 15.0,
                     inlier_thresh: float = 0.08,
                     max_range: float = 40.0,
                     num_hypotheses: int = 256,
                     max_samples: int = 8192,
                     min_inliers: int = 50,
                     generator: Optional[torch.Generator] = None,
                     min_depth: float = 0.5,
                     max_depth: float = 150.0) -> Tuple[Tensor, bool]:
    """Robust ground plane of one image from its depth map.

    Candidates: valid depth pixels (on a stride grid of about ``max_samples``), outside
    ``exclude_boxes``, below the camera (``y > 0``) and nearer than ``max_range``. RANSAC:
    ``num_hypotheses`` 3-point planes ``n . X + d = 0`` (``|n| = 1``, ``n_y < 0``, so ``d`` is
    the camera height), rejected unless the tilt ``acos(-n_y) <= max_tilt_deg`` and ``d`` lies
    in ``height_range``; score = inliers with ``|n . X + d| < inlier_thresh``. The best one is
    refined twice by least squares (the centred inliers' smallest principal direction), kept only
    if it still satisfies the constraints.

    Returns:
        ``plane (4,)`` and whether it was fitted (False: the prior ``y = cam_height``, i.e.
        ``(0, -1, 0, cam_height)``, because too few candidates or inliers).
    """
    depth, P, boxes = check_depth_inputs(
        depth, cam2img, exclude_boxes if exclude_boxes is not None else torch.zeros(0, 4))
    dtype, device = depth.dtype, depth.device
    prior = _prior_plane(cam_height, dtype, device)
    H, W = depth.shape
    d = sanitize_depth(depth, min_depth, max_depth)
    stride = max(1, int(math.sqrt(H * W / max(max_samples, 1))))
    rows = torch.arange(0, H, stride, device=device)
    cols = torch.arange(0, W, stride, device=device)
    vv, uu = torch.meshgrid(rows, cols, indexing='ij')
    z = d[vv, uu]
    ok = z > 0
    if boxes.shape[0] > 0:
        inside = ((uu[..., None] >= boxes[:, 0]) & (uu[..., None] < boxes[:, 2]) &
                  (vv[..., None] >= boxes[:, 1]) & (vv[..., None] < boxes[:, 3])).any(-1)
        if (ok & ~inside).sum() >= min_inliers:
            ok = ok & ~inside
    uv = torch.stack([uu, vv], dim=-1)[ok].to(dtype)
    pts = backproject(uv, z[ok], P)
    pts = pts[(pts[:, 1] > 0) & (pts[:, 2] < max_range)]
    m = pts.shape[0]
    if m < max(min_inliers, 3):
        return prior, False

    gen = generator
    if gen is None:
        gen = torch.Generator()
        gen.manual_seed(0)
    idx = torch.randint(0, m, (num_hypotheses, 3), generator=gen).to(device)
    p1, p2, p3 = pts[idx[:, 0]], pts[idx[:, 1]], pts[idx[:, 2]]
    n = torch.cross(p2 - p1, p3 - p1, dim=-1)
    nn_ = n.norm(dim=-1, keepdim=True)
    n = n / nn_.clamp(min=1e-12)
    n = torch.where(n[:, 1:2] > 0, -n, n)
    dd = -(n * p1).sum(-1)
    cos_tilt = math.cos(math.radians(max_tilt_deg))

    def _ok(normal, off, norm_ok=None):
        good = (-normal[..., 1] >= cos_tilt) & (off >= height_range[0]) & (off <= height_range[1])
        return good if norm_ok is None else good & norm_ok

    good = _ok(n, dd, nn_[:, 0] > 1e-9)
    dist = (pts @ n.T + dd).abs()  # (m, K)
    score = (dist < inlier_thresh).sum(0)
    score = torch.where(good, score, torch.full_like(score, -1))
    best = int(score.argmax())
    if int(score[best]) < min_inliers:
        return prior, False
    plane_n, plane_d = n[best], dd[best]
    for _ in range(2):
        inl = pts[((pts @ plane_n) + plane_d).abs() < inlier_thresh]
        if inl.shape[0] < 3:
            break
        c = inl.mean(0)
        cov = (inl - c).T @ (inl - c)
        ln = torch.linalg.eigh(cov.double())[1][:, 0].to(dtype)  # smallest eigenvalue
        ln = -ln if ln[1] > 0 else ln
        ld = -(ln * c).sum()
        if not bool(_ok(ln, ld)):
            break
        plane_n, plane_d = ln, ld
    return torch.cat([plane_n, plane_d.view(1)]).to(dtype), True
