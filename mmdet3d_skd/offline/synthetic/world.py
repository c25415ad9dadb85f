"""Scene sampling for the synthetic KITTI-format world.

Coordinates are KITTI's rectified camera-0 frame (x right, y down, z forward, metres); the
ground is the plane ``y = camera_height``. An object is a list of convex parts (oriented boxes
and prisms) in its local frame: origin at the bottom centre of its label box, ``x`` forward
(along ``l``), ``y`` down (the box spans ``y`` in ``[-h, 0]``), ``z`` along ``w``. A local
point ``p`` maps to the camera frame as ``R(ry) p + (x, y, z)`` with
``R(ry) = [[cos, 0, sin], [0, 1, 0], [-sin, 0, cos]]``, mmdet3d's ``CameraInstance3DBoxes``
convention. Every part lies inside the object's label box ``(l, h, w)``, so the label box is
the object's full extent, as KITTI annotates it.

Sampled label values (dimensions, location, yaw, camera height) are rounded to KITTI's label
precision (0.01) *before* rendering, so the label files hold the exact truth of the pixels.
"""
import math
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from ...datasets.kitti_format import KITTI_SIZE_PRIORS

# ----------------------------------------------------------------------------------------
# Calibration: KITTI's 2011_09_26 drive calibration (the one of KITTI object frame 000000 ...).
# ----------------------------------------------------------------------------------------
KITTI_IMAGE_SIZE = (1242, 375)  # (width, height)
KITTI_P0 = np.array([[721.5377, 0.0, 609.5593, 0.0],
                     [0.0, 721.5377, 172.854, 0.0],
                     [0.0, 0.0, 1.0, 0.0]])
KITTI_P1 = np.array([[721.5377, 0.0, 609.5593, -387.5744],
                     [0.0, 721.5377, 172.854, 0.0],
                     [0.0, 0.0, 1.0, 0.0]])
KITTI_P2 = np.array([[721.5377, 0.0, 609.5593, 44.85728],
                     [0.0, 721.5377, 172.854, 0.2163791],
                     [0.0, 0.0, 1.0, 0.002745884]])
KITTI_P3 = np.array([[721.5377, 0.0, 609.5593, -337.2877],
                     [0.0, 721.5377, 172.854, 2.369057],
                     [0.0, 0.0, 1.0, 0.004981016]])
KITTI_TR_VELO_TO_CAM = np.array(
    [[7.533745e-03, -9.999714e-01, -6.166020e-04, -4.069766e-03],
     [1.480249e-02, 7.280733e-04, -9.998902e-01, -7.631618e-02],
     [9.998621e-01, 7.523790e-03, 1.480755e-02, -2.717806e-01]])
KITTI_TR_IMU_TO_VELO = np.array(
    [[9.999976e-01, 7.553071e-04, -2.035826e-03, -8.086759e-01],
     [-7.854027e-04, 9.998898e-01, -1.482298e-02, 3.195559e-01],
     [2.024406e-03, 1.482454e-02, 9.998881e-01, -7.997231e-01]])
# The world is defined in the rectified frame: R0_rect is the identity.
KITTI_R0_RECT = np.eye(3)

# ----------------------------------------------------------------------------------------
# Classes. mmdet3d's KITTI class order (ids) and the size priors (l, h, w) in metres.
# ----------------------------------------------------------------------------------------
KITTI_CLASSES = ('Pedestrian', 'Cyclist', 'Car', 'Van', 'Truck', 'Person_sitting', 'Tram',
                 'Misc')
SYNTH_CLASSES = ('Pedestrian', 'Cyclist', 'Car')
#: Mean (l, h, w) per class, KITTI's training-set means; usable as dimension priors in configs.
CLASS_SIZE_PRIORS: Dict[str, Tuple[float, float, float]] = dict(KITTI_SIZE_PRIORS)
#: Standard deviations of (l, h, w) per class (close to KITTI's); samples are clipped to
#: mean +- 2.5 std.
CLASS_SIZE_STDS: Dict[str, Tuple[float, float, float]] = {
    'Pedestrian': (0.20, 0.11, 0.12),
    'Cyclist': (0.18, 0.09, 0.10),
    'Car': (0.40, 0.13, 0.10),
}

# Face "kinds" (how the shader textures a face).
KIND_PLAIN, KIND_GLASS, KIND_HEADLIGHTS, KIND_TAILLIGHTS, KIND_WINDOWS = 0, 1, 2, 3, 4
MAX_FACES = 10  # an octagonal prism: 8 sides + 2 caps

GENERATOR_VERSION = '1.0'


@dataclass
class DepthNoiseConfig:
    """Noise model of the depth maps (see ``depth_noise.py`` and docs/synthetic_data.md).

    ``D_noisy = s * E(D) * (1 + (rel_std_base + rel_std_per_m * E(D)) * n)``, with ``s ~
    N(1, scale_std)`` per image, ``E`` the edge smoothing and ``n`` a smooth unit field.
    """
    exact: bool = False
    scale_std: float = 0.05
    rel_std_base: float = 0.01
    rel_std_per_m: float = 0.002
    noise_cell: int = 16
    edge_jump: float = 0.10
    edge_width: int = 2
    edge_sigma: float = 2.0
    max_depth: float = 80.0


@dataclass
class WorldConfig:
    """Parameters of the synthetic world (all of them are stored in ``world.json``)."""
    width: int = KITTI_IMAGE_SIZE[0]
    height: int = KITTI_IMAGE_SIZE[1]
    camera_height: Tuple[float, float] = (1.60, 1.70)  # uniform range, metres
    depth_range: Tuple[float, float] = (4.0, 60.0)     # object location z, metres
    depth_beta: Tuple[float, float] = (1.3, 2.0)       # z = z0 + (z1 - z0) * Beta(a, b)
    objects_mean: float = 7.0                          # 1 + Poisson(mean - 1) objects
    objects_max: int = 14
    class_probs: Dict[str, float] = field(
        default_factory=lambda: {'Car': 0.66, 'Pedestrian': 0.22, 'Cyclist': 0.12})
    road_aligned_frac: float = 0.5   # share of cars driving along the road (yaw ~ +-pi/2)
    parked_row_prob: float = 0.5     # probability of a row of parked cars
    u_margin: float = 0.12           # bottom centres sampled in u in [-m W, (1 + m) W]
    clutter: bool = True             # buildings, poles, trees, crates (unlabelled)
    # labelling (KITTI-like)
    min_label_height: float = 15.0   # visible 2D box height (px) to get a label
    min_visible_frac: float = 0.10   # visible / un-occluded pixels to get a label
    max_label_truncation: float = 0.80
    min_dontcare_pixels: int = 20    # unlabelled objects with more visible pixels: DontCare
    occlusion_visible_frac: Tuple[float, float] = (0.90, 0.50)  # occ 0 if f >= .9, 1 if >= .5
    # image
    noise_std: Tuple[float, float] = (2.0, 6.0)        # per-image Gaussian noise std (0-255)
    depth_noise: DepthNoiseConfig = field(default_factory=DepthNoiseConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> 'WorldConfig':
        d = dict(d)
        d['depth_noise'] = DepthNoiseConfig(**d.get('depth_noise', {}))
        for k in ('camera_height', 'depth_range', 'depth_beta', 'noise_std',
                  'occlusion_visible_frac'):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)

    def calib(self) -> Dict[str, np.ndarray]:
        """KITTI's calibration with P0..P3 rows scaled to ``(width, height)`` (3x4 each)."""
        sx = self.width / KITTI_IMAGE_SIZE[0]
        sy = self.height / KITTI_IMAGE_SIZE[1]
        scale = np.diag([sx, sy, 1.0])
        return dict(P0=scale @ KITTI_P0, P1=scale @ KITTI_P1, P2=scale @ KITTI_P2,
                    P3=scale @ KITTI_P3, R0_rect=KITTI_R0_RECT.copy(),
                    Tr_velo_to_cam=KITTI_TR_VELO_TO_CAM.copy(),
                    Tr_imu_to_velo=KITTI_TR_IMU_TO_VELO.copy())


# ----------------------------------------------------------------------------------------
# Convex parts
# ----------------------------------------------------------------------------------------
@dataclass
class Part:
    """A convex polyhedron in an object's local frame.

    ``planes`` (F, 4): inside is ``n . p <= d`` for every row ``(nx, ny, nz, d)`` (unit ``n``,
    outward). ``verts`` (V, 3): its vertices. ``colors`` (F, 3) RGB 0-255 and ``kinds`` (F,)
    per face; ``tex`` = (strength, scale [1/m], offset_a, offset_b) of its texture.
    """
    planes: np.ndarray
    verts: np.ndarray
    colors: np.ndarray
    kinds: np.ndarray
    tex: np.ndarray


def prism(profile: np.ndarray, axes: Tuple[int, int, int], a0: float, a1: float,
          color, tex=(0.15, 4.0, 0.0, 0.0), kind: int = KIND_PLAIN) -> Part:
    """Extrude a convex counter-clockwise 2D polygon ``profile`` (N, 2), given in local axes
    ``(axes[0], axes[1])``, along local axis ``axes[2]`` from ``a0`` to ``a1``.

    Faces ``0..N-1`` are the sides (edge ``i`` from vertex ``i`` to ``i+1``), ``N`` the cap at
    ``a0`` and ``N + 1`` the cap at ``a1``.
    """
    i, j, k = axes
    prof = np.asarray(profile, dtype=np.float64)
    area = 0.5 * np.sum(prof[:, 0] * np.roll(prof[:, 1], -1) - np.roll(prof[:, 0], -1) * prof[:, 1])
    if area <= 0:
        raise ValueError('prism profile must be a counter-clockwise convex polygon')
    n = len(prof)
    planes = np.zeros((n + 2, 4))
    for e in range(n):
        p, q = prof[e], prof[(e + 1) % n]
        dp, dq = q - p
        nrm = np.array([dq, -dp]) / math.hypot(dp, dq)
        planes[e, i], planes[e, j] = nrm
        planes[e, 3] = nrm @ p
    planes[n, k], planes[n, 3] = -1.0, -a0
    planes[n + 1, k], planes[n + 1, 3] = 1.0, a1
    verts = np.zeros((2 * n, 3))
    verts[:n, i], verts[:n, j], verts[:n, k] = prof[:, 0], prof[:, 1], a0
    verts[n:, i], verts[n:, j], verts[n:, k] = prof[:, 0], prof[:, 1], a1
    colors = np.tile(np.asarray(color, dtype=np.float64), (n + 2, 1))
    kinds = np.full(n + 2, kind, dtype=np.int64)
    return Part(planes, verts, colors, kinds, np.asarray(tex, dtype=np.float64))


def box(center, size, color, tex=(0.15, 4.0, 0.0, 0.0), kind: int = KIND_PLAIN,
        pitch: float = 0.0) -> Part:
    """An oriented box: centre ``(cx, cy, cz)``, size ``(sx, sy, sz)`` in local axes, rotated
    by ``pitch`` about the local z axis (through its centre; ``pitch > 0`` tilts the box's
    up axis towards +x). Faces: 0 = +x, 1 = +y (bottom), 2 = -x, 3 = -y (top), 4 = -z,
    5 = +z."""
    sx, sy, sz = size
    prof = np.array([[sx / 2, -sy / 2], [sx / 2, sy / 2], [-sx / 2, sy / 2], [-sx / 2, -sy / 2]])
    part = prism(prof, (0, 1, 2), -sz / 2, sz / 2, color, tex, kind)
    return transform_part(part, _rot_z(pitch), np.asarray(center, dtype=np.float64))


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rot_y(ry: float) -> np.ndarray:
    """Yaw rotation of mmdet3d's camera boxes: local ``(1, 0, 0)`` -> ``(cos, 0, -sin)``."""
    c, s = math.cos(ry), math.sin(ry)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def transform_part(part: Part, rot: np.ndarray, trans: np.ndarray) -> Part:
    """Apply ``p -> rot @ p + trans`` to a part: ``n' = rot n``, ``d' = d + n' . trans``."""
    n = part.planes[:, :3] @ rot.T
    d = part.planes[:, 3] + n @ trans
    return Part(np.concatenate([n, d[:, None]], axis=1), part.verts @ rot.T + trans,
                part.colors, part.kinds, part.tex)


def _octagon(radius: float, c0: float, c1: float) -> np.ndarray:
    ang = (np.arange(8) + 0.5) * (2 * np.pi / 8)
    return np.stack([c0 + radius * np.cos(ang), c1 + radius * np.sin(ang)], axis=1)


# ----------------------------------------------------------------------------------------
# Object templates
# ----------------------------------------------------------------------------------------
_CAR_PAINTS = np.array([[200, 30, 30], [235, 235, 235], [25, 25, 28], [170, 172, 178],
                        [40, 70, 160], [120, 120, 125], [30, 100, 60], [220, 190, 40],
                        [110, 40, 30], [80, 110, 150], [190, 100, 30], [240, 240, 225]],
                       dtype=np.float64)
_CLOTHES = np.array([[30, 30, 40], [60, 60, 150], [150, 30, 30], [200, 200, 200],
                     [40, 90, 50], [120, 90, 60], [220, 160, 40], [90, 40, 120],
                     [20, 20, 20], [160, 160, 170]], dtype=np.float64)
_SKIN = np.array([[230, 190, 160], [200, 150, 110], [140, 95, 65], [90, 60, 40]],
                 dtype=np.float64)
_HAIR = np.array([[20, 15, 10], [80, 50, 25], [160, 130, 70], [110, 110, 110]],
                 dtype=np.float64)


def _jitter_color(rng, base, amount=20.0):
    return np.clip(np.asarray(base, dtype=np.float64) + rng.normal(0, amount, 3), 5, 250)


def _tex(rng, strength, scale):
    return (strength, scale, rng.uniform(0, 256), rng.uniform(0, 256))


def car_parts(l, h, w, rng) -> List[Part]:  # noqa: E741
    """Body (with head/tail lights), a glass cabin (trapezoid prism) and four wheels."""
    paint = _jitter_color(rng, _CAR_PAINTS[rng.integers(len(_CAR_PAINTS))], 12)
    style = rng.integers(3)  # 0 sedan, 1 hatchback, 2 SUV / van-like
    clear = rng.uniform(0.10, 0.14) * h
    body_top = {0: 0.56, 1: 0.58, 2: 0.62}[int(style)] * h
    parts = []
    body = box((0.0, -(clear + body_top) / 2, 0.0), (l, body_top - clear, w), paint,
               _tex(rng, 0.10, 3.0))
    body.kinds[0] = KIND_HEADLIGHTS   # +x: the front
    body.kinds[2] = KIND_TAILLIGHTS   # -x: the rear
    parts.append(body)
    if style == 0:
        bot, top = (-0.36, 0.20), (-0.27, 0.04)
    elif style == 1:
        bot, top = (-0.49, 0.18), (-0.47, 0.0)
    else:
        bot, top = (-0.49, 0.26), (-0.47, 0.12)
    jit = rng.uniform(-0.03, 0.03)
    # counter-clockwise in (x, y): roof (edge 0), windshield, bottom, rear window
    prof = np.array([[top[0] * l, -h], [(top[1] + jit) * l, -h],
                     [(bot[1] + jit) * l, -body_top], [bot[0] * l, -body_top]])
    cw = rng.uniform(0.80, 0.88) * w
    glass = _jitter_color(rng, (55, 65, 80), 10)
    cabin = prism(prof, (0, 1, 2), -cw / 2, cw / 2, glass, _tex(rng, 0.25, 0.8),
                  kind=KIND_GLASS)
    cabin.colors[0] = paint  # the roof is painted
    cabin.kinds[0] = KIND_PLAIN
    parts.append(cabin)
    r = min(0.21 * h, 0.34)
    tw = rng.uniform(0.16, 0.22) * w
    tyre = np.array([28.0, 28.0, 30.0])
    for sx in (-0.33, 0.31):
        for side in (-1, 1):
            z0, z1 = (w / 2 - tw, w / 2) if side > 0 else (-w / 2, -w / 2 + tw)
            parts.append(prism(_octagon(r, sx * l, -r), (0, 1, 2), z0, z1, tyre,
                               _tex(rng, 0.1, 6.0)))
    return parts


def pedestrian_parts(l, h, w, rng) -> List[Part]:  # noqa: E741
    """Two striding legs, torso, two arms and a head (face towards +x)."""
    top = _jitter_color(rng, _CLOTHES[rng.integers(len(_CLOTHES))], 15)
    pants = _jitter_color(rng, _CLOTHES[rng.integers(len(_CLOTHES))], 15)
    skin = _jitter_color(rng, _SKIN[rng.integers(len(_SKIN))], 8)
    hair = _jitter_color(rng, _HAIR[rng.integers(len(_HAIR))], 8)
    stride = rng.uniform(0.15, 0.40) * l
    leg_len = 0.47 * h
    leg_w = 0.18 * w + 0.04
    leg_d = min(0.16, 0.3 * l)
    parts = []
    for sgn in (-1, 1):
        x = sgn * stride / 2
        x = float(np.clip(x, -l / 2 + leg_d / 2, l / 2 - leg_d / 2))
        parts.append(box((x, -leg_len / 2, sgn * 0.15 * w), (leg_d, leg_len, leg_w), pants,
                         _tex(rng, 0.15, 8.0)))
    torso_d = min(0.26, 0.5 * l)
    head_s = min(0.13 * h, 0.24)
    torso_h = h - head_s - 0.025 * h - leg_len   # a short neck between torso and head
    parts.append(box((0.0, -leg_len - torso_h / 2, 0.0), (torso_d, torso_h, 0.62 * w), top,
                     _tex(rng, 0.15, 8.0)))
    swing = rng.uniform(-0.25, 0.25) * l
    for sgn in (-1, 1):
        parts.append(box((float(np.clip(sgn * swing, -l / 2 + 0.05, l / 2 - 0.05)),
                          -leg_len - 0.15 * h, sgn * 0.39 * w),
                         (0.09, 0.30 * h, 0.16 * w), top, _tex(rng, 0.1, 8.0)))
    head = box((0.01, -h + head_s / 2, 0.0), (head_s * 0.95, head_s, head_s * 0.8), hair,
               _tex(rng, 0.1, 10.0))
    head.colors[0] = skin  # the face
    parts.append(head)
    return parts


def cyclist_parts(l, h, w, rng) -> List[Part]:  # noqa: E741
    """A bike (two octagonal wheels, frame, handlebar) and a rider leaning forward (+x)."""
    frame_c = _jitter_color(rng, _CAR_PAINTS[rng.integers(len(_CAR_PAINTS))], 15)
    top = _jitter_color(rng, _CLOTHES[rng.integers(len(_CLOTHES))], 15)
    pants = _jitter_color(rng, _CLOTHES[rng.integers(len(_CLOTHES))], 15)
    skin = _jitter_color(rng, _SKIN[rng.integers(len(_SKIN))], 8)
    helmet = _jitter_color(rng, _CLOTHES[rng.integers(len(_CLOTHES))], 20)
    r = min(0.19 * h, 0.35 * l / 2)
    wz = 0.05
    parts = []
    tyre = np.array([25.0, 25.0, 25.0])
    for cx in (-l / 2 + r, l / 2 - r):
        parts.append(prism(_octagon(r, cx, -r), (0, 1, 2), -wz / 2, wz / 2, tyre,
                           _tex(rng, 0.1, 6.0)))
    parts.append(box((0.0, -r - 0.05, 0.0), (l - 2 * r, 0.08, 0.06), frame_c,
                     _tex(rng, 0.05, 4.0)))
    parts.append(box((l / 2 - r - 0.05, -0.50 * h, 0.0), (0.06, 0.08, min(0.9 * w, 0.56)),
                     (40, 40, 40), _tex(rng, 0.05, 4.0)))
    # rider: legs from the saddle down, torso leaning forward, head
    hip_y = -0.50 * h
    parts.append(box((-0.05 * l, (hip_y - 0.12) / 2, 0.0), (0.20, -hip_y - 0.12, 0.34 * w),
                     pants, _tex(rng, 0.15, 8.0)))
    lean = rng.uniform(0.35, 0.7)
    head_s = min(0.13 * h, 0.25)
    tl = (h - head_s - 0.03 * h + hip_y) / math.cos(lean)   # the torso reaches the neck
    tcx = -0.05 * l + 0.5 * tl * math.sin(lean)
    tcy = hip_y - 0.5 * tl * math.cos(lean)
    parts.append(box((tcx, tcy, 0.0), (0.22, tl, 0.62 * w), top, _tex(rng, 0.15, 8.0),
                     pitch=lean))
    hx = -0.05 * l + tl * math.sin(lean) + 0.03
    hx = min(hx, l / 2 - head_s / 2)
    head = box((hx, -h + head_s / 2, 0.0), (head_s, head_s, head_s * 0.85), helmet,
               _tex(rng, 0.1, 10.0))
    head.colors[0] = skin
    parts.append(head)
    return parts


_TEMPLATES = {'Car': car_parts, 'Pedestrian': pedestrian_parts, 'Cyclist': cyclist_parts}


# ----------------------------------------------------------------------------------------
# Scene
# ----------------------------------------------------------------------------------------
@dataclass
class SceneObject:
    """One object: label box ``(x, y, z)`` bottom centre, ``(l, h, w)``, ``ry``, its parts.
    ``name`` is a KITTI class, or ``None`` for unlabelled clutter."""
    name: Optional[str]
    loc: np.ndarray
    dims: np.ndarray  # l, h, w
    ry: float
    parts: List[Part]

    @property
    def rotation(self) -> np.ndarray:
        return rot_y(self.ry)

    def corners(self) -> np.ndarray:
        """The label box's 8 corners in the camera frame, (8, 3)."""
        l, h, w = self.dims
        c = np.array([[sx * l / 2, sy, sz * w / 2] for sx in (-1, 1) for sy in (0.0, -h)
                      for sz in (-1, 1)])
        return c @ self.rotation.T + self.loc


@dataclass
class Scene:
    """Everything needed to render one frame."""
    objects: List[SceneObject]
    camera_height: float
    sun: np.ndarray              # unit vector towards the sun, camera frame (y < 0)
    ambient: float
    sky_top: np.ndarray
    sky_horizon: np.ndarray
    haze: np.ndarray
    fog_dist: float
    road_center: float
    road_half_width: float
    lane_width: float
    road_color: np.ndarray
    walk_color: np.ndarray
    grass_color: np.ndarray
    skyline: np.ndarray          # per image column: skyline height above the horizon (px)
    skyline_color: np.ndarray
    exposure: float
    noise_std: float
    depth_scale: float           # the depth map's per-image scale error s
    tex_seed_offset: float


def _footprint(loc, dims, ry, margin=0.0) -> np.ndarray:
    """BEV rectangle corners (4, 2) in (x, z)."""
    l, _, w = dims
    a, b = l / 2 + margin, w / 2 + margin
    c, s = math.cos(ry), math.sin(ry)
    local = np.array([[a, b], [a, -b], [-a, -b], [-a, b]])
    # local (lx, lz) -> (lx c + lz s, -lx s + lz c)
    x = local[:, 0] * c + local[:, 1] * s + loc[0]
    z = -local[:, 0] * s + local[:, 1] * c + loc[2]
    return np.stack([x, z], axis=1)


def _overlap(p: np.ndarray, q: np.ndarray) -> bool:
    """Separating-axis test of two convex polygons."""
    for poly in (p, q):
        for e in range(len(poly)):
            d = poly[(e + 1) % len(poly)] - poly[e]
            axis = np.array([-d[1], d[0]])
            a, b = p @ axis, q @ axis
            if a.max() < b.min() or b.max() < a.min():
                return False
    return True


def _r2(v):
    return float(np.round(v, 2))


def _wrap_angle(a: float) -> float:
    """Wrap to [-pi, pi) and round to 0.01 inside that range."""
    a = (a + math.pi) % (2 * math.pi) - math.pi
    a = _r2(a)
    if a < -3.14:
        a = -3.14
    if a > 3.14:
        a = 3.14
    return a


class _Placer:
    """Bird's-eye-view footprints placed so far; new ones must not overlap them."""

    def __init__(self, cam_h: float):
        self.cam_h = cam_h
        self.footprints: List[np.ndarray] = []

    def free(self, loc, dims, ry, margin) -> bool:
        fp = _footprint(loc, dims, ry, margin)
        # keep clear of the recording car and of the region just in front of the camera
        if _overlap(fp, np.array([[-1.2, -3.0], [1.2, -3.0], [1.2, 2.5], [-1.2, 2.5]])):
            return False
        return not any(_overlap(fp, o) for o in self.footprints)

    def add(self, loc, dims, ry):
        self.footprints.append(_footprint(loc, dims, ry, 0.0))


def _sample_dims(name: str, rng) -> np.ndarray:
    mean = np.array(CLASS_SIZE_PRIORS[name])
    std = np.array(CLASS_SIZE_STDS[name])
    d = mean + std * np.clip(rng.standard_normal(3), -2.5, 2.5)
    return np.round(np.maximum(d, 0.2), 2)


def _in_front(obj_corners: np.ndarray) -> bool:
    return bool(obj_corners[:, 2].min() > 1.0)


def _make_object(name, loc, dims, ry, rng) -> SceneObject:
    parts = _TEMPLATES[name](float(dims[0]), float(dims[1]), float(dims[2]), rng)
    return SceneObject(name, np.asarray(loc, dtype=np.float64), np.asarray(dims, np.float64),
                       float(ry), parts)


def _clutter(cfg: WorldConfig, placer: _Placer, rng, road_c, road_hw) -> List[SceneObject]:
    """Unlabelled scenery: building rows, poles, trees and crates (hard negatives)."""
    out = []
    cam_h = placer.cam_h
    for side in (-1, 1):
        if rng.random() < 0.7:
            x_front = road_c + side * (road_hw + rng.uniform(3.0, 12.0))
            z = rng.uniform(2.0, 15.0)
            while z < 110.0:
                length = rng.uniform(8.0, 30.0)
                depth = rng.uniform(6.0, 15.0)
                hgt = rng.uniform(4.0, 16.0)
                if rng.random() < 0.8:
                    loc = np.array([x_front + side * depth / 2, cam_h, z + length / 2])
                    dims = np.array([depth, hgt, length])  # l along x at ry = 0
                    col = _jitter_color(rng, [(180, 160, 140), (150, 150, 155), (200, 190, 170),
                                              (130, 90, 70), (210, 210, 215)][rng.integers(5)],
                                        15)
                    b = box((0.0, -hgt / 2, 0.0), (depth, hgt, length), col, _tex(rng, 0.2, 0.7),
                            kind=KIND_WINDOWS)
                    b.kinds[1] = b.kinds[3] = KIND_PLAIN  # bottom, roof
                    out.append(SceneObject(None, loc, dims, 0.0, [b]))
                    placer.add(loc, dims, 0.0)
                z += length + rng.uniform(0.0, 6.0)
    for _ in range(rng.integers(0, 5)):   # poles
        x = road_c + rng.choice([-1, 1]) * (road_hw + rng.uniform(0.3, 2.5))
        loc = np.array([x, cam_h, rng.uniform(5.0, 60.0)])
        hgt = rng.uniform(3.0, 7.0)
        dims = np.array([0.16, hgt, 0.16])
        if not placer.free(loc, dims, 0.0, 0.2):
            continue
        col = _jitter_color(rng, (110, 110, 115), 20)
        parts = [box((0.0, -hgt / 2, 0.0), (0.16, hgt, 0.16), col, _tex(rng, 0.1, 4.0))]
        if rng.random() < 0.5:  # a sign
            parts.append(box((0.0, -hgt + 0.45, 0.0), (0.05, 0.6, 0.6),
                             _jitter_color(rng, (40, 80, 170), 30), _tex(rng, 0.1, 4.0)))
            dims = np.array([0.16, hgt, 0.6])
        out.append(SceneObject(None, loc, dims, 0.0, parts))
        placer.add(loc, dims, 0.0)
    for _ in range(rng.integers(0, 5)):   # trees
        x = road_c + rng.choice([-1, 1]) * (road_hw + rng.uniform(1.0, 6.0))
        loc = np.array([x, cam_h, rng.uniform(6.0, 70.0)])
        hgt = rng.uniform(4.0, 9.0)
        rad = rng.uniform(1.0, 2.2)
        dims = np.array([2 * rad, hgt, 2 * rad])
        if not placer.free(loc, dims, 0.0, 0.2):
            continue
        trunk = box((0.0, -hgt * 0.25, 0.0), (0.3, hgt * 0.5, 0.3),
                    _jitter_color(rng, (90, 65, 40), 10), _tex(rng, 0.2, 6.0))
        crown = prism(_octagon(rad, 0.0, 0.0), (0, 2, 1), -hgt, -hgt * 0.4,
                      _jitter_color(rng, (50, 110, 45), 20), _tex(rng, 0.5, 3.0))
        out.append(SceneObject(None, loc, dims, 0.0, [trunk, crown]))
        placer.add(loc, dims, 0.0)
    for _ in range(rng.integers(0, 4)):   # crates, bins, barriers
        x = road_c + rng.uniform(-road_hw - 3.0, road_hw + 3.0)
        loc = np.array([x, cam_h, rng.uniform(5.0, 50.0)])
        dims = np.array([rng.uniform(0.4, 2.5), rng.uniform(0.4, 1.4), rng.uniform(0.4, 1.2)])
        ry = rng.uniform(-np.pi, np.pi)
        if not placer.free(loc, dims, ry, 0.2):
            continue
        col = _jitter_color(rng, _CAR_PAINTS[rng.integers(len(_CAR_PAINTS))], 25)
        crate = box((0.0, -dims[1] / 2, 0.0), dims, col, _tex(rng, 0.2, 3.0))
        out.append(SceneObject(None, loc, dims, ry, [crate]))
        placer.add(loc, dims, ry)
    return out


def sample_scene(cfg: WorldConfig, rng: np.random.Generator) -> Scene:
    """Sample one frame's world: labelled objects, clutter, lighting, ground and sky."""
    P2 = cfg.calib()['P2']
    fx, cx = P2[0, 0], P2[0, 2]
    cam_h = _r2(rng.uniform(*cfg.camera_height))
    road_hw = rng.uniform(3.5, 8.0)
    road_c = rng.uniform(-2.0, 2.0)
    placer = _Placer(cam_h)
    clutter = _clutter(cfg, placer, rng, road_c, road_hw) if cfg.clutter else []

    objects: List[SceneObject] = []

    def try_add(name, loc, dims, ry, margin):
        loc = np.round(np.asarray(loc, dtype=np.float64), 2)
        loc[1] = cam_h
        ry = _wrap_angle(ry)
        if not placer.free(loc, dims, ry, margin):
            return False
        obj = _make_object(name, loc, dims, ry, rng)
        if not _in_front(obj.corners()):
            return False
        objects.append(obj)
        placer.add(loc, dims, ry)
        return True

    n_target = int(min(cfg.objects_max, 1 + rng.poisson(max(cfg.objects_mean - 1.0, 0.0))))
    if rng.random() < cfg.parked_row_prob and n_target >= 2:
        side = rng.choice([-1, 1])
        x = road_c + side * (road_hw - rng.uniform(0.8, 1.2))
        z = rng.uniform(6.0, 30.0)
        heading = (np.pi / 2 if rng.random() < 0.5 else -np.pi / 2)
        for _ in range(int(rng.integers(2, 6))):
            dims = _sample_dims('Car', rng)
            z += dims[0] / 2
            if z > cfg.depth_range[1]:
                break
            try_add('Car', (x + rng.normal(0, 0.15), cam_h, z), dims,
                    heading + rng.normal(0, 0.05), 0.05)
            z += dims[0] / 2 + rng.uniform(0.6, 2.5)
    names = list(cfg.class_probs)
    probs = np.array([cfg.class_probs[k] for k in names], dtype=np.float64)
    probs /= probs.sum()
    tries = 0
    while len(objects) < n_target and tries < 100:
        tries += 1
        name = names[rng.choice(len(names), p=probs)]
        dims = _sample_dims(name, rng)
        z0, z1 = cfg.depth_range
        z = z0 + (z1 - z0) * rng.beta(*cfg.depth_beta)
        u = rng.uniform(-cfg.u_margin, 1.0 + cfg.u_margin) * cfg.width
        x = (u - cx) * z / fx
        if name == 'Car' and rng.random() < cfg.road_aligned_frac:
            ry = (np.pi / 2 if rng.random() < 0.5 else -np.pi / 2) + rng.normal(0, 0.08)
        else:
            ry = rng.uniform(-np.pi, np.pi)
        try_add(name, (x, cam_h, z), dims, ry, 0.3 if name == 'Car' else 0.1)

    sun = np.array([rng.uniform(-1, 1), -rng.uniform(0.5, 1.5), rng.uniform(-1, 1)])
    sun /= np.linalg.norm(sun)
    day = rng.uniform(0.7, 1.1)
    sky_top = _jitter_color(rng, (90, 140, 215), 25) * day
    sky_hor = _jitter_color(rng, (200, 215, 230), 15) * day
    skyline = _skyline(cfg.width, rng)
    return Scene(
        objects=objects + clutter,
        camera_height=cam_h,
        sun=sun,
        ambient=rng.uniform(0.35, 0.55),
        sky_top=sky_top,
        sky_horizon=sky_hor,
        haze=_jitter_color(rng, (190, 195, 200), 10),
        fog_dist=rng.uniform(150.0, 500.0),
        road_center=road_c,
        road_half_width=road_hw,
        lane_width=rng.uniform(3.0, 3.8),
        road_color=_jitter_color(rng, (95, 95, 100), 12),
        walk_color=_jitter_color(rng, (160, 155, 145), 15),
        grass_color=_jitter_color(rng, [(80, 120, 50), (120, 110, 80)][rng.integers(2)], 15),
        skyline=skyline,
        skyline_color=_jitter_color(rng, (120, 125, 135), 20),
        exposure=rng.uniform(0.85, 1.15),
        noise_std=rng.uniform(*cfg.noise_std),
        depth_scale=float(1.0 + cfg.depth_noise.scale_std * rng.standard_normal()),
        tex_seed_offset=rng.uniform(0, 256),
    )


def _skyline(width: int, rng) -> np.ndarray:
    """Far-away buildings/trees silhouette: height above the horizon per column (px)."""
    h = np.zeros(width)
    x = 0
    scale = width / KITTI_IMAGE_SIZE[0]
    level = rng.uniform(5, 40)
    while x < width:
        seg = int(rng.uniform(10, 90) * scale) + 1
        level = float(np.clip(level + rng.normal(0, 12), 0, 70))
        h[x:x + seg] = level * scale
        x += seg
    return h
