"""Camera geometry for SKD-WM3D: projection, back-projection, box corners, yaw/alpha.

Conventions (docs/architecture.md): KITTI rectified camera frame (x right, y down, z forward,
metres); mmdet3d ``CameraInstance3DBoxes`` rows ``(x, y, z, l, h, w, ry)`` with ``(x, y, z)`` the
bottom centre and a local point ``(l/2, 0, 0)`` mapping to ``(l/2 cos ry, 0, -l/2 sin ry)``;
``alpha = ry - atan2(x, z)``; ``cam2img`` a 3x3 / 3x4 / 4x4 projection (KITTI P2 with its
translation column).

Everything here is pure, batched and differentiable torch. mmdet3d's ``points_cam2img`` takes a
single 2-D matrix and ``points_img2cam`` inverts at the *projective* depth (the third homogeneous
coordinate, which differs from the camera ``z`` by ``P[2, 3]``); the head needs per-instance
matrices and an exact inverse at camera ``z``, hence these small re-implementations. The corner
layout is identical to ``CameraInstance3DBoxes.corners`` (tested against it).
"""
import math
from typing import Sequence, Tuple

import torch
from torch import Tensor

__all__ = [
    'to_4x4', 'project_points', 'backproject', 'cell_centres', 'camera_rays', 'rotation_y',
    'box_corners',
    'gravity_to_bottom', 'bottom_to_gravity', 'wrap_angle', 'yaw_to_alpha',
    'alpha_to_yaw', 'to_box_bev', 'camera_in_box_bev', 'bev_box_corners', 'masked_quantile'
]


def to_4x4(cam2img: Tensor) -> Tensor:
    """Pad a ``(..., 3, 3)``, ``(..., 3, 4)`` or ``(..., 4, 4)`` projection to ``(..., 4, 4)``.

    The missing entries are taken from the identity (as mmdet3d's ``points_cam2img`` does).
    """
    cam2img = torch.as_tensor(cam2img)
    if cam2img.dim() < 2:
        raise ValueError(
            f'geometry.to_4x4: cam2img must be at least 2-D, got shape {tuple(cam2img.shape)}')
    r, c = cam2img.shape[-2:]
    if (r, c) == (4, 4):
        return cam2img
    if (r, c) not in ((3, 3), (3, 4)):
        raise ValueError('geometry.to_4x4: cam2img must be 3x3, 3x4 or 4x4, got '
                         f'{r}x{c} (shape {tuple(cam2img.shape)})')
    out = torch.eye(4, dtype=cam2img.dtype, device=cam2img.device)
    out = out.expand(*cam2img.shape[:-2], 4, 4).clone()
    out[..., :r, :c] = cam2img
    return out


def project_points(points: Tensor, cam2img: Tensor,
                   eps: float = 1e-6) -> Tuple[Tensor, Tensor]:
    """Project camera-frame points into the image.

    ``[u*s, v*s, s] = P[:3] @ [X, Y, Z, 1]``; returns ``uv = (u, v)`` of shape ``(..., 2)`` and the
    projective depth ``s`` of shape ``(...)`` (``s = Z + P[2, 3]`` for KITTI P2; ``s <= 0``
    means behind the camera). ``s`` is clamped away from 0 (by ``eps``, sign kept) in the
    division only, so the result stays finite.

    Args:
        points: ``(..., 3)`` camera-frame points.
        cam2img: ``(..., 4, 4)`` (or 3x3 / 3x4) broadcastable against ``points[..., None, :]``.
    """
    P = to_4x4(cam2img).to(points.dtype)
    homo = torch.cat([points, torch.ones_like(points[..., :1])], dim=-1)
    proj = (P[..., :3, :] @ homo.unsqueeze(-1)).squeeze(-1)
    s = proj[..., 2]
    s_safe = torch.where(s >= 0, s.clamp(min=eps), s.clamp(max=-eps))
    uv = proj[..., :2] / s_safe.unsqueeze(-1)
    return uv, s


def backproject(uv: Tensor, depth: Tensor, cam2img: Tensor, eps: float = 1e-9) -> Tensor:
    """Exact inverse of :func:`project_points` at camera depth ``Z`` (not the projective depth).

    With ``P`` the top 3x4 of ``cam2img`` and ``Z`` known, ``u * (P[2] . X) = P[0] . X`` and
    ``v * (P[2] . X) = P[1] . X`` are linear in ``(X, Y)``::

        (P00 - u P20) X + (P01 - u P21) Y = u (P22 Z + P23) - P02 Z - P03
        (P10 - v P20) X + (P11 - v P21) Y = v (P22 Z + P23) - P12 Z - P13

    solved in closed form (Cramer's rule), translation column included.

    Args:
        uv: ``(..., 2)`` image points.
        depth: ``(...)`` camera depth ``Z``.
        cam2img: ``(..., 4, 4)`` (or 3x3 / 3x4), broadcastable against ``uv[..., None, :]``.

    Returns:
        ``(..., 3)`` camera-frame points.
    """
    P = to_4x4(cam2img).to(uv.dtype)
    u, v, z = uv[..., 0], uv[..., 1], depth
    a11 = P[..., 0, 0] - u * P[..., 2, 0]
    a12 = P[..., 0, 1] - u * P[..., 2, 1]
    a21 = P[..., 1, 0] - v * P[..., 2, 0]
    a22 = P[..., 1, 1] - v * P[..., 2, 1]
    w = P[..., 2, 2] * z + P[..., 2, 3]
    b1 = u * w - P[..., 0, 2] * z - P[..., 0, 3]
    b2 = v * w - P[..., 1, 2] * z - P[..., 1, 3]
    det = a11 * a22 - a12 * a21
    det = torch.where(det >= 0, det.clamp(min=eps), det.clamp(max=-eps))
    x = (b1 * a22 - a12 * b2) / det
    y = (a11 * b2 - b1 * a21) / det
    x, y, z = torch.broadcast_tensors(x, y, z)
    return torch.stack([x, y, z], dim=-1)


def cell_centres(h: int, w: int, input_hw: Sequence[int], device=None,
                 dtype=torch.float32) -> Tensor:
    """(h*w, 2) input-image pixel (u, v) of the centres of an h x w feature grid laid over an
    input image of size ``input_hw``, row by row."""
    sy, sx = input_hw[0] / h, input_hw[1] / w
    ys, xs = torch.meshgrid((torch.arange(h, device=device, dtype=dtype) + 0.5) * sy,
                            (torch.arange(w, device=device, dtype=dtype) + 0.5) * sx,
                            indexing='ij')
    return torch.stack([xs, ys], -1).reshape(h * w, 2)


def camera_rays(cam2img: Tensor, feat_hw: Sequence[int], input_hw: Sequence[int]) -> Tensor:
    """(B,2,h,w) camera ray of each cell centre as (X/Z, Y/Z), the back-projection at Z = 1
    through ``cam2img`` (B,4,4) of the input image: the intrinsics-normalised image
    coordinates, which stay right under every crop, scale and flip that updates ``cam2img``.
    A fully convolutional head cannot tell where a cell lies in the image; with these it can
    use where an object stands (its ray to the ground) as a depth cue."""
    h, w = feat_hw
    b = cam2img.shape[0]
    uv = cell_centres(h, w, input_hw, cam2img.device, cam2img.dtype)
    ones = torch.ones(b, h * w, device=cam2img.device, dtype=cam2img.dtype)
    xyz = backproject(uv[None].expand(b, -1, -1), ones, to_4x4(cam2img)[:, None])
    return xyz[..., :2].reshape(b, h, w, 2).permute(0, 3, 1, 2).contiguous()


def rotation_y(yaw: Tensor) -> Tensor:
    """Rotation matrices ``(..., 3, 3)`` about the camera y axis, box-local -> camera:

    ``R = [[cos, 0, sin], [0, 1, 0], [-sin, 0, cos]]`` so ``R @ (l/2, 0, 0) = (l/2 cos, 0,
    -l/2 sin)`` (mmdet3d's ``rotation_3d_in_axis(..., axis=1)`` convention).
    """
    c, s = torch.cos(yaw), torch.sin(yaw)
    o, z = torch.ones_like(c), torch.zeros_like(c)
    return torch.stack([
        torch.stack([c, z, s], dim=-1),
        torch.stack([z, o, z], dim=-1),
        torch.stack([-s, z, c], dim=-1)
    ], dim=-2)


# corner signs (x, y, z) relative to the gravity centre, in CameraInstance3DBoxes.corners order
# (x0y0z0, x0y0z1, x0y1z1, x0y1z0, x1y0z0, x1y0z1, x1y1z1, x1y1z0); y points down, so y0 is the
# top (y - h) and y1 the bottom (y) of mmdet3d's bottom-centred box
_CORNER_SIGNS = ((-1, -1, -1), (-1, -1, 1), (-1, 1, 1), (-1, 1, -1),
                 (1, -1, -1), (1, -1, 1), (1, 1, 1), (1, 1, -1))


def box_corners(center: Tensor, dims: Tensor, yaw: Tensor) -> Tensor:
    """The 8 corners ``(N, 8, 3)`` of boxes given by their gravity centre.

    ``corner_k = center + R(yaw) @ (s_k * (l, h, w) / 2)`` with the sign patterns ``s_k`` ordered
    exactly as ``CameraInstance3DBoxes(bottom_centre, l, h, w, ry).corners`` where
    ``bottom_centre = center + (0, h/2, 0)``.

    Args:
        center: ``(N, 3)`` gravity centres.
        dims: ``(N, 3)`` ``(l, h, w)``.
        yaw: ``(N,)`` rotation ``ry`` about y.
    """
    signs = center.new_tensor(_CORNER_SIGNS)  # (8, 3)
    local = 0.5 * dims.unsqueeze(-2) * signs  # (N, 8, 3)
    R = rotation_y(yaw)  # (N, 3, 3)
    return center.unsqueeze(-2) + local @ R.transpose(-1, -2)


def gravity_to_bottom(center: Tensor, dims: Tensor) -> Tensor:
    """Bottom centre ``(x, y + h/2, z)`` from gravity centre (y points down)."""
    return center + torch.stack(
        [torch.zeros_like(dims[..., 1]), 0.5 * dims[..., 1], torch.zeros_like(dims[..., 1])],
        dim=-1)


def bottom_to_gravity(bottom: Tensor, dims: Tensor) -> Tensor:
    """Gravity centre ``(x, y - h/2, z)`` from bottom centre."""
    return bottom - torch.stack(
        [torch.zeros_like(dims[..., 1]), 0.5 * dims[..., 1], torch.zeros_like(dims[..., 1])],
        dim=-1)


def wrap_angle(angle: Tensor, period: float = 2 * math.pi) -> Tensor:
    """Wrap to ``[-period/2, period/2)``: ``a - period * floor(a / period + 1/2)``."""
    return angle - period * torch.floor(angle / period + 0.5)


def yaw_to_alpha(yaw: Tensor, center: Tensor) -> Tensor:
    """Observation angle ``alpha = wrap(ry - atan2(x, z))``; ``center`` ``(..., 3)``."""
    return wrap_angle(yaw - torch.atan2(center[..., 0], center[..., 2]))


def alpha_to_yaw(alpha: Tensor, center: Tensor) -> Tensor:
    """Yaw ``ry = wrap(alpha + atan2(x, z))``; ``center`` ``(..., 3)``."""
    return wrap_angle(alpha + torch.atan2(center[..., 0], center[..., 2]))


def to_box_bev(points: Tensor, center: Tensor, yaw: Tensor) -> Tensor:
    """Camera-frame points into each box's bird's-eye-view frame.

    ``(x_l, z_l) = R(yaw)^T (p - c)`` restricted to x/z, i.e. with ``(dx, dz) = p - c``:
    ``x_l = dx cos(ry) - dz sin(ry)``, ``z_l = dx sin(ry) + dz cos(ry)``.
    In this frame the box occupies ``|x_l| <= l/2``, ``|z_l| <= w/2``.

    Args:
        points: ``(N, P, 3)`` (or ``(N, P, 2)`` already as ``(x, z)``).
        center: ``(N, 3)``.
        yaw: ``(N,)``.

    Returns:
        ``(N, P, 2)`` local ``(x_l, z_l)``.
    """
    if points.shape[-1] == 3:
        px, pz = points[..., 0], points[..., 2]
    else:
        px, pz = points[..., 0], points[..., 1]
    dx = px - center[..., 0:1]
    dz = pz - center[..., 2:3]
    c, s = torch.cos(yaw).unsqueeze(-1), torch.sin(yaw).unsqueeze(-1)
    return torch.stack([dx * c - dz * s, dx * s + dz * c], dim=-1)


def camera_in_box_bev(center: Tensor, yaw: Tensor) -> Tensor:
    """The camera origin in each box's BEV frame, ``(N, 2)`` (see :func:`to_box_bev`)."""
    origin = center.new_zeros(center.shape[0], 1, 3)
    return to_box_bev(origin, center, yaw)[:, 0]


def bev_box_corners(center: Tensor, dims: Tensor, yaw: Tensor) -> Tensor:
    """BEV corners ``(N, 4, 2)`` as camera ``(x, z)``, counter-clockwise in the local frame:
    local ``(+l/2, +w/2), (-l/2, +w/2), (-l/2, -w/2), (+l/2, -w/2)``."""
    signs = center.new_tensor([[1., 1.], [-1., 1.], [-1., -1.], [1., -1.]])
    lw = torch.stack([dims[..., 0], dims[..., 2]], dim=-1)
    loc = 0.5 * lw.unsqueeze(-2) * signs  # (N, 4, 2) local (x_l, z_l)
    c, s = torch.cos(yaw).unsqueeze(-1), torch.sin(yaw).unsqueeze(-1)
    # inverse of to_box_bev: dx = x_l cos + z_l sin, dz = -x_l sin + z_l cos
    x = loc[..., 0] * c + loc[..., 1] * s + center[..., 0:1]
    z = -loc[..., 0] * s + loc[..., 1] * c + center[..., 2:3]
    return torch.stack([x, z], dim=-1)


def masked_quantile(values: Tensor, mask: Tensor, q: float) -> Tensor:
    """Row-wise quantile ``(N,)`` of ``values (N, P)`` over ``mask``, nearest-rank
    (index ``round(q (n - 1))`` of the sorted valid values); 0 for empty rows."""
    n = mask.sum(-1)
    v = torch.where(mask, values, torch.full_like(values, float('inf')))
    srt = v.sort(-1).values
    idx = torch.round(q * (n - 1).clamp(min=0).to(values.dtype)).long()
    out = srt.gather(-1, idx.clamp(min=0, max=max(values.shape[-1] - 1, 0)).unsqueeze(-1))[..., 0]
    return torch.where(n > 0, out, torch.zeros_like(out))
