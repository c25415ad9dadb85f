"""Pseudo points: the object's own surface inside each 2D box, from a dense depth map.

The weak 3D losses (:mod:`.weak_losses`) compare the predicted boxes with these points. Nothing
here needs LiDAR or a 3D label, and nothing carries gradient (these are targets). mmdet3d has no
equivalent (its point-based code assumes LiDAR sweeps and 3D boxes), hence this module.

Per image, :func:`extract_pseudo_points`:

1. treats non-finite, non-positive or out-of-range depth as invalid;
2. fits the ground plane to the image's depth points outside the 2D boxes
   (:func:`.ground_plane.fit_ground_plane`: RANSAC over 3-point planes whose normal is within
   ``max_tilt`` of the camera's -y axis and whose camera height lies in ``height_range``, then
   least-squares refinement on the inliers; falls back to the flat prior ``y = cam_height``);
3. samples each clipped 2D box on a grid of at most ``grid_size x grid_size`` pixels
   (every pixel for boxes up to that size) and back-projects them through ``cam2img``;
4. drops ground pixels (height above the plane ``< ground_thresh``);
5. finds the object's depth slab: over a log-depth histogram (bins of relative width
   ``log_bin``), the slab starting at depth ``d`` spans ``[d, d + slab_scale * diag + rel_noise *
   d]`` with ``diag = sqrt(l^2 + w^2)`` of the class prior; the first (nearest) start whose slab
   holds at least ``mode_share`` of the box's non-ground pixels is found, and the fullest slab
   starting within that slab is taken. Pixels outside it (the background behind, occluders or
   noise in front) are dropped. Occluders that carry their own label are handled by a second
   pass: a pixel that also lies inside a box ``j`` whose bottom edge is lower in the image by
   more than ``occluder_margin`` px (on flat ground: ``j`` stands nearer) and whose depth falls in
   ``j``'s slab belongs to ``j`` and is removed before the slab search is repeated;
6. keeps ``num_points`` of the surface pixels (uniform stride in grid order, or a random subset
   with ``generator``), padding with ``mask = False``: those of the side faces (lower than
   ``side_frac * h`` above the ground) when there are ``min_points`` of them, else all; a real
   car's hood, roof and cabin lie inside its box footprint, so only its lower sides meet the
   box faces that the BEV alignment and the L-shape fit assume. Boxes with fewer than
   ``min_points`` surface pixels get ``valid = False``;
7. derives the instance depth target, see below.

Depth target. A box is centrally symmetric, so its centre depth is exactly the middle of its
z-range: ``z_c = z_min + E_z / 2`` with ``E_z = l |sin ry| + w |cos ry|`` the box's extent along
the camera's z axis; the box's nearest point (``z_min``) is visible unless another object or the
image border hides it (nothing of the box itself lies between it and the camera). We use

* ``z* = z_near + E / 2``;
* ``z_near``: the ``surface_quantile`` quantile of the z of all the box's surface pixels
  (a robust minimum, taken before subsampling);
* ``E = min(max(E_vis, E_prior), extent_cap * diag)``;
* ``E_vis``: the surface pixels' 5-95 % z-range, a lower bound of ``E_z`` (only the near faces
  are seen: their z-range is the larger of the two faces' z-extents, not their sum);
* ``E_prior``: ``E_z`` of the class-prior box at the yaw observed in the points' BEV shape
  (L-shape fit, length axis resolved with the prior, :func:`resolve_length_axis`), blended
  towards the yaw-average ``2 (l + w) / pi`` by ``1 - yaw_conf``.

The max lets objects bigger than the prior (vans labelled car) widen ``E``; the cap stops depth
noise from inflating it. The rule works along the optical axis rather than each pixel's ray
because the head's depth is the camera ``z``, for which the identity above is exact.

``centre_rule='box'`` (:func:`.orientation_fit.prior_box_centre`) places the class-prior box at
the observed yaw instead: along each of its two BEV axes the face turned to the camera sits at the
``surface_quantile`` of the picked points (the other end of the axis when the camera is on that
side), and ``z*`` is the box centre's z. It uses both axes rather than the optical axis alone,
with no visible-extent bound: on exact depth maps its median error is about half the surface
rule's (docs/benchmarks.md, "Weak depth targets").

``yaw_rule='box_fit'`` takes ``yaw_obs`` from :func:`.orientation_fit.fit_box_yaw` (the prior box
searched over yaw against the points and the 2D box's width) instead of the L-shape fit and the
prior's axis rule: on the estimator-like maps the length axis is then right for about 4 in 5
cars instead of 2 in 3 (docs/benchmarks.md). ``yaw_conf`` stays the L-shape's.
"""
import math
from dataclasses import dataclass, fields
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..datasets.kitti_format import KITTI_SIZE_PRIORS
from .geometry import backproject, masked_quantile
from .ground_plane import check_depth_inputs, fit_ground_plane, sanitize_depth
from .orientation_fit import (fit_box_yaw, points_orientation, prior_box_centre,
                              resolve_length_axis)

__all__ = ['PseudoPoints', 'fit_ground_plane', 'extract_pseudo_points', 'batch_pseudo_points',
           'masked_quantile', 'resolve_length_axis', 'DEFAULT_DIMS_PRIOR']

#: KITTI mean car size (l, h, w), used when no class prior is given.
DEFAULT_DIMS_PRIOR = KITTI_SIZE_PRIORS['Car']


@dataclass
class PseudoPoints:
    """Pseudo-point targets of ``N`` instances (no gradient).

    Attributes:
        points: ``(N, P, 3)`` camera-frame surface points (zeros where ``mask`` is False).
        mask: ``(N, P)`` bool, real points.
        valid: ``(N,)`` bool, at least ``min_points`` surface points; invalid instances must
            get no depth/alignment/orientation loss.
        num_valid: ``(N,)`` long, surface points found before subsampling.
        surface_depth: ``(N,)`` robust nearest z of the surface pixels (0 if invalid).
        depth_target: ``(N,)`` instance depth target ``z*`` (0 if invalid).
        extent: ``(N,)`` the z-extent ``E`` of the surface rule (0 if invalid).
        yaw_obs: ``(N,)`` yaw from the points' BEV shape, modulo ``pi`` (length axis resolved
            with the class prior); modulo ``pi/2`` it is the raw L-shape fit.
        yaw_conf: ``(N,)`` in ``[0, 1]`` confidence of ``yaw_obs`` (0 if invalid).
        ground_plane: ``(N, 4)`` the image's ground plane ``(a, b, c, d)``, unit normal pointing
            up (``b < 0``): height above ground of ``X`` is ``a x + b y + c z + d``.
    """
    points: Tensor
    mask: Tensor
    valid: Tensor
    num_valid: Tensor
    surface_depth: Tensor
    depth_target: Tensor
    extent: Tensor
    yaw_obs: Tensor
    yaw_conf: Tensor
    ground_plane: Tensor

    def __len__(self) -> int:
        return self.points.shape[0]

    def to(self, device=None, dtype=None) -> 'PseudoPoints':
        """Move every tensor to ``device``; ``dtype`` applies to the floating-point fields."""
        out = {}
        for f in fields(self):
            t = getattr(self, f.name)
            out[f.name] = t.to(device=device, dtype=dtype if t.is_floating_point() else None)
        return PseudoPoints(**out)

    @classmethod
    def cat(cls, items: Sequence['PseudoPoints']) -> 'PseudoPoints':
        """Concatenate the instances of several images (same ``num_points``)."""
        if len(items) == 0:
            raise ValueError('PseudoPoints.cat: nothing to concatenate')
        sizes = {it.points.shape[1] for it in items}
        if len(sizes) != 1:
            raise ValueError(f'PseudoPoints.cat: different num_points {sorted(sizes)}')
        return cls(**{
            f.name: torch.cat([getattr(it, f.name) for it in items], dim=0)
            for f in fields(cls)
        })

    @classmethod
    def empty(cls, num_points: int, device=None, dtype=torch.float32,
              ground_plane: Optional[Tensor] = None) -> 'PseudoPoints':
        """Zero instances."""
        z = torch.zeros(0, dtype=dtype, device=device)
        return cls(
            points=torch.zeros(0, num_points, 3, dtype=dtype, device=device),
            mask=torch.zeros(0, num_points, dtype=torch.bool, device=device),
            valid=torch.zeros(0, dtype=torch.bool, device=device),
            num_valid=torch.zeros(0, dtype=torch.long, device=device),
            surface_depth=z, depth_target=z.clone(), extent=z.clone(), yaw_obs=z.clone(),
            yaw_conf=z.clone(), ground_plane=torch.zeros(0, 4, dtype=dtype, device=device))


def _depth_slab(b: Tensor, keep: Tensor, end: Tensor,
                mode_share: float) -> Tuple[Tensor, Tensor, Tensor]:
    """Nearest significant slab per box on a depth histogram (module docstring, step 5).

    ``b (N, M)`` bin of each sample, ``keep (N, M)`` the samples that count, ``end (N, K)``
    the last bin of the slab starting at each bin. Returns ``found (N,)``, first and last bin
    ``kstar, kend (N,)`` of the chosen slab.
    """
    N, K = end.shape
    counts = torch.zeros(N, K, dtype=torch.float32, device=b.device)
    counts.scatter_add_(1, b, keep.float())
    total = counts.sum(-1)
    cum = torch.cat([counts.new_zeros(N, 1), counts.cumsum(-1)], dim=-1)
    slab = cum.gather(1, end + 1) - cum[:, :K]  # (N, K): samples in bins [k, end_k]
    cond = (slab >= mode_share * total[:, None]) & (counts > 0) & (total[:, None] > 0)
    found = cond.any(-1)
    k0 = cond.long().argmax(-1)  # first True
    kk = torch.arange(K, device=b.device)[None]
    window = (kk >= k0[:, None]) & (kk <= end.gather(1, k0[:, None]))
    kstar = torch.where(window, slab, torch.full_like(slab, -1.0)).argmax(-1)
    kend = end.gather(1, kstar[:, None])[:, 0]
    return found, kstar, kend


def _sample_boxes(d_map: Tensor, P: Tensor, boxes: Tensor, G: int):
    """Step 3: each box clipped to the image and sampled on a grid of at most ``G x G`` pixel
    centres. Returns the clipped boxes ``(x1, y1, x2, y2)``, the sampled pixels' columns and
    rows ``(N, M)``, their depth, whether they are valid samples, and their back-projection
    ``(N, M, 3)``."""
    dtype, device = d_map.dtype, d_map.device
    H, W = d_map.shape
    N = boxes.shape[0]
    x1 = boxes[:, 0].clamp(0, W)
    x2 = boxes[:, 2].clamp(0, W)
    y1 = boxes[:, 1].clamp(0, H)
    y2 = boxes[:, 3].clamp(0, H)
    bw, bh = (x2 - x1).clamp(min=0), (y2 - y1).clamp(min=0)
    nu = torch.ceil(bw).clamp(max=G)
    nv = torch.ceil(bh).clamp(max=G)
    k = torch.arange(G, dtype=dtype, device=device)
    us = x1[:, None] + (k + 0.5) * bw[:, None] / nu.clamp(min=1)[:, None]  # (N, G)
    vs = y1[:, None] + (k + 0.5) * bh[:, None] / nv.clamp(min=1)[:, None]
    cu = us.floor().clamp(0, W - 1).long()
    cv = vs.floor().clamp(0, H - 1).long()
    in_u, in_v = k[None] < nu[:, None], k[None] < nv[:, None]
    cv_g, cu_g = cv[:, :, None].expand(N, G, G), cu[:, None, :].expand(N, G, G)
    in_grid = (in_v[:, :, None] & in_u[:, None, :]).reshape(N, -1)
    cv_g, cu_g = cv_g.reshape(N, -1), cu_g.reshape(N, -1)
    z = d_map[cv_g, cu_g]  # (N, M)
    ok = in_grid & (z > 0)
    uv = torch.stack([cu_g, cv_g], dim=-1).to(dtype)
    pts = backproject(uv, z, P)  # (N, M, 3)
    return (x1, y1, x2, y2), (cu_g, cv_g), z, ok, pts


def _object_surface(z: Tensor, keep: Tensor, diag: Tensor, box_px, cells, min_depth: float,
                    max_depth: float, log_bin: float, mode_share: float, slab_scale: float,
                    rel_noise: float, occluder_margin: Optional[float]) -> Tensor:
    """Step 5: the non-ground pixels ``keep`` in each box's nearest significant object-sized
    depth slab on a log-depth histogram, after the pixels that labelled occluders claim
    (module docstring). Returns the surface mask ``(N, M)``."""
    x1, y1, x2, y2 = box_px
    cu_g, cv_g = cells
    N = z.shape[0]
    log0 = math.log(min_depth)
    K = int(math.ceil((math.log(max_depth) - log0) / log_bin)) + 1
    b = ((torch.log(z.clamp(min=min_depth)) - log0) / log_bin).floor().long().clamp(0, K - 1)
    d_start = torch.exp(log0 + log_bin * torch.arange(K, dtype=z.dtype, device=z.device))  # (K,)
    d_end = d_start[None] * (1.0 + rel_noise) + slab_scale * diag[:, None]  # (N, K)
    end = ((torch.log(d_end) - log0) / log_bin).floor().long().clamp(0, K - 1)
    found, kstar, kend = _depth_slab(b, keep, end, mode_share)
    if occluder_margin is not None and N > 1:
        # second pass: a pixel inside another box j whose bottom edge is lower in the image
        # (j stands nearer on the ground) and whose depth lies in j's slab belongs to j
        in_j = ((cu_g[:, :, None] >= x1.floor()) & (cu_g[:, :, None] < x2.ceil()) &
                (cv_g[:, :, None] >= y1.floor()) & (cv_g[:, :, None] < y2.ceil()))  # (N, M, N)
        front = (y2[None, :] > y2[:, None] + occluder_margin) & found[None, :]  # (i, j)
        in_slab = (b[:, :, None] >= kstar[None, None]) & (b[:, :, None] <= kend[None, None])
        claimed = (in_j & in_slab & front[:, None, :]).any(-1)
        keep = keep & ~claimed
        found, kstar, kend = _depth_slab(b, keep, end, mode_share)
    return keep & (b >= kstar[:, None]) & (b <= kend[:, None]) & found[:, None]


def _subsample(pts: Tensor, pick: Tensor, valid: Tensor, num_points: int,
               generator: Optional[torch.Generator]) -> Tuple[Tensor, Tensor]:
    """Step 6: ``num_points`` of the ``pick`` pixels per box (uniform stride in grid order,
    or a random subset with ``generator``), zero-padded; returns the points and their mask."""
    N, M = pick.shape
    device, dtype = pts.device, pts.dtype
    n_pick = pick.sum(-1)
    if generator is not None:
        key = torch.rand(N, M, generator=generator).to(device)
        pos_rule_stride = False
    else:
        key = torch.arange(M, dtype=dtype, device=device).expand(N, M) / M
        pos_rule_stride = True
    order = torch.where(pick, key, key + 2.0).argsort(-1)
    j = torch.arange(num_points, device=device)[None]  # (1, P)
    n_i = n_pick[:, None]
    if pos_rule_stride:
        pos = torch.where(n_i >= num_points, (j * n_i) // num_points, j)
    else:
        pos = j.expand(N, -1)
    pos = pos.clamp(max=M - 1)
    sel = order.gather(1, pos)
    pmask = (j < n_i) & valid[:, None]
    points = pts.gather(1, sel[..., None].expand(N, num_points, 3))
    points = torch.where(pmask[..., None], points, torch.zeros_like(points))
    return points, pmask


def _depth_target(points: Tensor, pmask: Tensor, pts: Tensor, pick: Tensor, surf: Tensor,
                  pl: Tensor, pw: Tensor, diag: Tensor, surface_quantile: float,
                  extent_cap: float,
                  yaw_fit: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Step 7: the observed yaw and its confidence (L-shape of the picked points, length
    axis resolved with the prior; ``yaw_fit`` replaces the yaw when given), the z-extent ``E``
    and the surface depth ``z_near`` (module docstring, "Depth target")."""
    yaw_raw, conf = points_orientation(points, pmask)
    px, pz = pts[..., 0], pts[..., 2]

    def _spread(v, m):
        return masked_quantile(v, m, 0.95) - masked_quantile(v, m, 0.05)

    if yaw_fit is not None:
        yaw_obs = yaw_fit
    else:
        ca, sa = torch.cos(yaw_raw)[:, None], torch.sin(yaw_raw)[:, None]
        proj_a = px * ca - pz * sa  # along (cos ry, -sin ry)
        proj_b = px * sa + pz * ca  # along (sin ry, cos ry)
        yaw_obs = resolve_length_axis(yaw_raw, _spread(proj_a, pick), _spread(proj_b, pick),
                                      pl, pw)
    e_yaw = pl * yaw_obs.sin().abs() + pw * yaw_obs.cos().abs()
    e_prior = conf * e_yaw + (1 - conf) * (2.0 / math.pi) * (pl + pw)
    e_vis = _spread(pz, surf)
    extent = torch.minimum(torch.maximum(e_vis, e_prior), extent_cap * diag)
    z_near = masked_quantile(pz, surf, surface_quantile)
    return yaw_obs, conf, extent, z_near


@torch.no_grad()
def extract_pseudo_points(depth: Tensor,
                          cam2img: Tensor,
                          boxes2d: Tensor,
                          dims_prior: Optional[Tensor] = None,
                          num_points: int = 128,
                          min_points: int = 16,
                          grid_size: int = 64,
                          ground_plane: Optional[Tensor] = None,
                          ground_thresh: float = 0.1,
                          min_depth: float = 0.5,
                          max_depth: float = 150.0,
                          log_bin: float = 0.01,
                          mode_share: float = 0.25,
                          slab_scale: float = 1.0,
                          rel_noise: float = 0.05,
                          surface_quantile: float = 0.05,
                          extent_cap: float = 1.25,
                          side_frac: float = 0.5,
                          occluder_margin: Optional[float] = 2.0,
                          centre_rule: str = 'surface',
                          yaw_rule: str = 'lshape',
                          width_weight: float = 0.5,
                          generator: Optional[torch.Generator] = None,
                          ground_cfg: Optional[dict] = None) -> PseudoPoints:
    """Pseudo points and depth targets of the 2D boxes of one image (see the module docstring).

    Args:
        depth: ``(H, W)`` metres, 0 / NaN / inf / negative = invalid.
        cam2img: 3x3 / 3x4 / 4x4 projection of this image.
        boxes2d: ``(N, 4)`` ``x1 y1 x2 y2`` in pixels (pixel ``(r, c)`` covers
            ``[c, c+1) x [r, r+1)`` and is back-projected at ``(u, v) = (c, r)``).
        dims_prior: ``(N, 3)`` or ``(3,)`` class size prior ``(l, h, w)``; default a KITTI car.
        num_points: ``P`` points kept per box.
        min_points: fewer surface points -> ``valid = False``.
        grid_size: at most this many samples per box side (all pixels of smaller boxes).
        ground_plane: ``(4,)`` to skip fitting; else :func:`fit_ground_plane` with ``ground_cfg``.
        ground_thresh: pixels lower than this above the plane (or below it) are ground.
        log_bin, mode_share, slab_scale, rel_noise: the depth-slab search (module docstring).
        surface_quantile: the quantile of the points' z used as the surface depth.
        extent_cap: ``E <= extent_cap * sqrt(l^2 + w^2)``.
        side_frac: the kept points are the surface pixels lower than ``side_frac * h`` above
            the ground (the side faces), when there are ``min_points`` of them.
        occluder_margin: pixels px; None disables the occluder pass (module docstring).
        centre_rule: ``'surface'`` (``z* = z_near + E / 2``) or ``'box'`` (the prior box at
            the observed yaw fitted to the points, :func:`.orientation_fit.prior_box_centre`).
        yaw_rule: ``'lshape'`` (L-shape fit, axis by the prior) or ``'box_fit'``
            (:func:`.orientation_fit.fit_box_yaw`, with ``width_weight``).
        generator: random subsampling with it; None -> uniform stride (deterministic).
        ground_cfg: extra kwargs of :func:`fit_ground_plane` (``cam_height``,
            ``height_range``, ``max_tilt_deg``, ``inlier_thresh``, ...).
    """
    depth, P, boxes = check_depth_inputs(depth, cam2img, boxes2d)
    dtype, device = depth.dtype, depth.device
    N, G = boxes.shape[0], int(grid_size)
    if G < 1 or num_points < 1:
        raise ValueError(f'extract_pseudo_points: grid_size ({grid_size}) and num_points '
                         f'({num_points}) must be >= 1')
    if centre_rule not in ('surface', 'box'):
        raise ValueError(f"extract_pseudo_points: centre_rule must be 'surface' or 'box', got "
                         f'{centre_rule!r}')
    if yaw_rule not in ('lshape', 'box_fit'):
        raise ValueError(f"extract_pseudo_points: yaw_rule must be 'lshape' or 'box_fit', got "
                         f'{yaw_rule!r}')
    d_map = sanitize_depth(depth, min_depth, max_depth)  # 1.
    if ground_plane is None:  # 2.
        cfg = dict(min_depth=min_depth, max_depth=max_depth)
        cfg.update(ground_cfg or {})
        ground_plane, _ = fit_ground_plane(d_map, P, boxes, **cfg)
    ground_plane = torch.as_tensor(ground_plane, dtype=dtype, device=device).reshape(4)
    if N == 0:
        return PseudoPoints.empty(num_points, device, dtype)
    if dims_prior is None:
        dims_prior = DEFAULT_DIMS_PRIOR
    prior = torch.as_tensor(dims_prior, dtype=dtype, device=device).expand(N, 3)
    pl, pw = prior[:, 0].clamp(min=0.05), prior[:, 2].clamp(min=0.05)
    diag = torch.sqrt(pl * pl + pw * pw)

    box_px, cells, z, ok, pts = _sample_boxes(d_map, P, boxes, G)  # 3.
    height = pts @ ground_plane[:3] + ground_plane[3]  # 4. height above the ground
    keep = ok & (height >= ground_thresh)
    surf = _object_surface(z, keep, diag, box_px, cells, min_depth, max_depth, log_bin,  # 5.
                           mode_share, slab_scale, rel_noise, occluder_margin)
    num_valid = surf.sum(-1)
    valid = num_valid >= max(int(min_points), 1)
    # points for the BEV terms: the side faces (below side_frac of the prior height), where a
    # real object meets its box; hood/roof/cabin pixels lie inside the footprint
    side = surf & (height < side_frac * prior[:, 1:2])
    use_side = side.sum(-1) >= max(int(min_points), 1)
    pick = torch.where(use_side[:, None], side, surf)
    points, pmask = _subsample(pts, pick, valid, num_points, generator)  # 6.
    yaw_fit = None
    if yaw_rule == 'box_fit':
        x1, _, x2, _ = box_px
        inside = (boxes[:, 0] > 0.5) & (boxes[:, 2] < d_map.shape[1] - 0.5)  # not cut by the border
        yaw_fit = fit_box_yaw(points, pmask, pl, pw, torch.stack([x1, x2], -1), P,
                              surface_quantile, inside, width_weight=width_weight)
    yaw_obs, conf, extent, z_near = _depth_target(points, pmask, pts, pick, surf, pl, pw,  # 7.
                                                  diag, surface_quantile, extent_cap, yaw_fit)
    if centre_rule == 'box':
        target = prior_box_centre(pts, pick, yaw_obs[:, None], pl, pw,
                                  surface_quantile)[:, 0, 1]
    else:
        target = z_near + 0.5 * extent
    zero = torch.zeros_like(z_near)
    return PseudoPoints(
        points=points,
        mask=pmask,
        valid=valid,
        num_valid=num_valid,
        surface_depth=torch.where(valid, z_near, zero),
        depth_target=torch.where(valid, target, zero),
        extent=torch.where(valid, extent, zero),
        yaw_obs=torch.where(valid, yaw_obs, zero),
        yaw_conf=torch.where(valid, conf, zero),
        ground_plane=ground_plane[None].expand(N, 4).clone())


@torch.no_grad()
def subsample_depth(depth: Tensor, cam2img: Tensor, boxes2d: Tensor, stride: int):
    """Every ``stride``-th depth pixel (``(..., H, W)``), with ``cam2img`` and boxes mapped
    exactly to the subsampled grid.

    Sub-pixel ``j`` is full pixel ``s j + o`` (``o = s // 2``), whose centre ``s j + o + 1/2``
    is the sub-grid coordinate ``j + 1/2`` under ``u_sub = (u - c) / s``, ``c = o + 1/2 - s/2``.
    The camera-frame points are unchanged; only 1/s^2 of the pixels are processed.
    """
    o = stride // 2
    c = o + 0.5 - stride / 2
    a = cam2img.new_tensor([[1 / stride, 0, -c / stride, 0], [0, 1 / stride, -c / stride, 0],
                            [0, 0, 1, 0], [0, 0, 0, 1]])
    return depth[..., o::stride, o::stride], a @ cam2img, (boxes2d - c) / stride


def batch_pseudo_points(depth_maps: Tensor, targets, dims_prior: Tensor, depth_stride: int = 1,
                        **kwargs) -> PseudoPoints:
    """:func:`extract_pseudo_points` for every image of a batch, rows in instance order.

    Args:
        depth_maps: ``(B, 1, H, W)`` or ``(B, H, W)`` (zero-padded, as SKDDataPreprocessor
            stacks them; input-image pixels, like the boxes and ``cam2img``).
        targets: any object with ``batch_idx (N,)``, ``boxes2d (N, 4)``, ``labels (N,)`` and
            ``cam2img (N, 4, 4)`` (all instances of an image share its matrix), e.g. SKDHead's
            ``Targets``.
        dims_prior: ``(num_classes, 3)`` class size priors ``(l, h, w)``.
        depth_stride: extract from every ``depth_stride``-th pixel (:func:`subsample_depth`):
            the points stay exact, the cost falls by ``depth_stride ** 2``.
        **kwargs: forwarded to :func:`extract_pseudo_points`.
    """
    if depth_maps.dim() == 4:
        if depth_maps.shape[1] != 1:
            raise ValueError('batch_pseudo_points: depth_maps must be (B, 1, H, W) or (B, H, W), '
                             f'got {tuple(depth_maps.shape)}')
        depth_maps = depth_maps[:, 0]
    if depth_maps.dim() != 3:
        raise ValueError('batch_pseudo_points: depth_maps must be (B, 1, H, W) or (B, H, W), got '
                         f'{tuple(depth_maps.shape)}')
    batch_idx = targets.batch_idx.to(depth_maps.device).long()
    n = batch_idx.shape[0]
    num_points = kwargs.get('num_points', 128)
    if n == 0:
        return PseudoPoints.empty(num_points, depth_maps.device, depth_maps.dtype)
    if int(batch_idx.max()) >= depth_maps.shape[0] or int(batch_idx.min()) < 0:
        raise ValueError(f'batch_pseudo_points: instance batch indices {batch_idx.tolist()} do '
                         f'not fit {depth_maps.shape[0]} depth maps')
    prior = torch.as_tensor(dims_prior, device=depth_maps.device, dtype=depth_maps.dtype)
    prior = prior[targets.labels.to(depth_maps.device).long()]
    parts, order = [], []
    for b in torch.unique(batch_idx).tolist():
        idx = torch.nonzero(batch_idx == b, as_tuple=False)[:, 0]
        depth, cam2img, boxes = depth_maps[b], targets.cam2img[idx[0]], targets.boxes2d[idx]
        if depth_stride > 1:
            depth, cam2img, boxes = subsample_depth(depth, cam2img, boxes, depth_stride)
        parts.append(extract_pseudo_points(depth, cam2img, boxes, dims_prior=prior[idx],
                                           **kwargs))
        order.append(idx)
    merged = PseudoPoints.cat(parts)
    inv = torch.argsort(torch.cat(order))
    return PseudoPoints(**{f.name: getattr(merged, f.name)[inv] for f in fields(PseudoPoints)})
