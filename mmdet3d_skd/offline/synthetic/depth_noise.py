"""Depth maps that look like an off-the-shelf monocular estimator's, not like the truth.

Given the exact depth ``D`` (camera-0 z in metres, 0 = invalid) the noisy map is::

    E = D where no depth edge is near, else the normalised Gaussian blur of D (sigma px)
    D_noisy = s * E * (1 + (a + b * E) * n)        (valid pixels only, clipped below at 0.1 E)

- ``s ~ N(1, scale_std)``: a per-image scale error (drawn with the scene,
  ``Scene.depth_scale``), the dominant error of monocular estimators;
- ``n``: a smooth Gaussian random field (white noise on a grid of ``noise_cell`` px, Gaussian
  blurred with a sigma of one cell, bilinearly upsampled), normalised per image to zero mean
  and unit standard deviation; the relative error's std ``a + b * E`` grows with depth;
- edge smoothing: a pixel is on a depth edge when the 3x3 max / 3x3 min of the valid depths
  around it exceeds ``1 + edge_jump``; the edge mask is dilated by ``edge_width`` px and there
  the depth is replaced by the validity-normalised Gaussian blur (``edge_sigma`` px) of ``D``,
  mixing foreground and background like an estimator's "flying pixels";
- invalid: pixels with ``D == 0`` (sky, far background) stay 0, and values beyond
  ``max_depth`` become 0.

With ``exact=True`` the map is ``D`` itself. Nothing in mmdet3d simulates depth estimators,
hence this module.
"""
from typing import Dict, Tuple

import cv2
import numpy as np

from .world import DepthNoiseConfig


def smooth_unit_field(height: int, width: int, cell: int,
                      rng: np.random.Generator) -> np.ndarray:
    """A smooth random field (H, W), zero mean and unit std over the image."""
    cell = max(int(cell), 1)
    gh, gw = height // cell + 3, width // cell + 3
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    grid = cv2.GaussianBlur(grid, (0, 0), 1.0, borderType=cv2.BORDER_REFLECT)
    field = cv2.resize(grid, (gw * cell, gh * cell), interpolation=cv2.INTER_LINEAR)
    field = field[cell:cell + height, cell:cell + width]
    field = field - field.mean()
    std = field.std()
    return field / std if std > 0 else field


def depth_edges(depth: np.ndarray, jump: float, width: int) -> np.ndarray:
    """Valid pixels within ``width`` px of a relative depth jump larger than ``jump``."""
    valid = depth > 0
    hi = cv2.dilate(np.where(valid, depth, 0).astype(np.float32), np.ones((3, 3), np.uint8))
    lo = cv2.erode(np.where(valid, depth, 1e6).astype(np.float32), np.ones((3, 3), np.uint8))
    edge = valid & (hi > lo * np.float32(1.0 + jump))
    if width > 0:
        k = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
        edge = cv2.dilate(edge.astype(np.uint8), k).astype(bool) & valid
    return edge


def apply_depth_noise(depth: np.ndarray, cfg: DepthNoiseConfig, scale: float,
                      rng: np.random.Generator) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
    """Turn the exact depth ``depth`` (H, W) into the estimator-like map (see module doc).

    Returns ``(noisy, aux)``, ``aux`` holding ``edge`` (the smoothed pixels), ``smoothed``
    (``E``) and ``field`` (``n``), for tests and figures.
    """
    depth = depth.astype(np.float32)
    valid = depth > 0
    h, w = depth.shape
    if cfg.exact:
        out = np.where(valid & (depth <= cfg.max_depth), depth, 0).astype(np.float32)
        return out, dict(edge=np.zeros_like(valid), smoothed=out, field=np.zeros_like(out))
    edge = depth_edges(depth, cfg.edge_jump, cfg.edge_width)
    num = cv2.GaussianBlur(np.where(valid, depth, 0).astype(np.float32), (0, 0), cfg.edge_sigma)
    den = cv2.GaussianBlur(valid.astype(np.float32), (0, 0), cfg.edge_sigma)
    blurred = num / np.maximum(den, 1e-6)
    smoothed = np.where(edge, blurred, depth).astype(np.float32)
    field = smooth_unit_field(h, w, cfg.noise_cell, rng).astype(np.float32)
    rel = np.float32(cfg.rel_std_base) + np.float32(cfg.rel_std_per_m) * smoothed
    factor = np.maximum(1.0 + rel * field, 0.1)
    noisy = np.float32(scale) * smoothed * factor
    noisy = np.where(valid & (noisy <= cfg.max_depth), noisy, 0).astype(np.float32)
    return noisy, dict(edge=edge, smoothed=smoothed, field=field)
