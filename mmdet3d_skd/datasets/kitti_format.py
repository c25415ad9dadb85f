"""KITTI's on-disk format, one owner for the dataset, the offline tools and the tests
(numpy only): calib and label files (strict parsers and writers), depth PNGs (one encoding
rule), the difficulty rule, the class size prior, and atomic writes.

mmdet3d reads these only inside its converter script (``tools/dataset_converters/
kitti_data_utils.py``, not importable from the installed package), which accepts malformed
rows silently (a short row becomes a wrongly shaped matrix; ``nan`` passes). These parsers
raise ``ValueError`` naming the file, the row or line, and the problem. A missing file raises
the usual ``FileNotFoundError`` (its message holds the path).
"""
import math
import os
import os.path as osp
import pickle
import struct
import tempfile
import zlib
from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np

# KITTI class means (l, h, w) in metres, in mmdet3d's order Pedestrian, Cyclist, Car (the values
# of MonoDLE / SMOKE): the default size prior of the heads and the weak losses, the synthetic
# world's mean sizes.
KITTI_SIZE_PRIORS: Dict[str, Tuple[float, float, float]] = {
    'Pedestrian': (0.84, 1.76, 0.66),
    'Cyclist': (1.76, 1.74, 0.60),
    'Car': (3.88, 1.53, 1.63),
}
KITTI_DIMS_PRIOR = tuple(KITTI_SIZE_PRIORS.values())

# Canonical calib rows and their shapes (row-major in the file).
CALIB_SHAPES: Dict[str, Tuple[int, int]] = {
    'P0': (3, 4), 'P1': (3, 4), 'P2': (3, 4), 'P3': (3, 4),
    'R0_rect': (3, 3), 'Tr_velo_to_cam': (3, 4), 'Tr_imu_to_velo': (3, 4),
}
# Other spellings found in KITTI's files (tracking / raw-data calib) -> canonical name.
CALIB_ALIASES = {'R_rect': 'R0_rect', 'Tr_velo_cam': 'Tr_velo_to_cam',
                 'Tr_imu_velo': 'Tr_imu_to_velo'}
# The monocular path needs the left colour camera's projection only.
REQUIRED_CALIB = ('P2', )

LABEL_FIELDS = 15  # type trunc occ alpha x1 y1 x2 y2 h w l x y z ry [score]


def _read_text(path: str) -> List[str]:
    """The file's lines; undecodable bytes -> ValueError naming the file."""
    with open(path, 'rb') as f:
        data = f.read()
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as e:
        raise ValueError(f'{path}: not a text file ({e})') from None
    if '\x00' in text:
        raise ValueError(f'{path}: not a text file (NUL byte)')
    return text.splitlines()


def _floats(path: str, where: str, tokens: Sequence[str]) -> np.ndarray:
    try:
        vals = np.array([float(t) for t in tokens], dtype=np.float64)
    except ValueError:
        bad = next(t for t in tokens if not _is_float(t))
        raise ValueError(f'{path}: {where}: {bad!r} is not a number') from None
    if not np.isfinite(vals).all():
        raise ValueError(f'{path}: {where}: non-finite value '
                         f'{tokens[int(np.flatnonzero(~np.isfinite(vals))[0])]!r}')
    return vals


def _is_float(t: str) -> bool:
    try:
        float(t)
        return True
    except ValueError:
        return False


def read_calib(path: str, required: Iterable[str] = REQUIRED_CALIB) -> Dict[str, np.ndarray]:
    """KITTI calib file -> ``{name: float64 matrix}``.

    Lines are ``KEY: v1 v2 ...`` (the colon may be missing, as in KITTI's tracking calib);
    blank lines are skipped. Known rows (``CALIB_SHAPES``; aliases ``R_rect``,
    ``Tr_velo_cam``, ``Tr_imu_velo``) are reshaped: ``P0..P3`` and ``Tr_*`` (3, 4),
    ``R0_rect`` (3, 3). Unknown keys are kept as flat arrays. Rows in ``required``
    (default: ``P2`` only) must be present; pass ``CALIB_SHAPES`` to require all seven.

    Raises ValueError (file, row, problem) on: a missing required row, a row with the wrong
    number of values, a value that is not a number or not finite, a row given twice, a line
    without values.
    """
    out: Dict[str, np.ndarray] = {}
    for n, raw in enumerate(_read_text(path), start=1):
        line = raw.strip()
        if not line:
            continue
        if ':' in line:
            key, rest = line.split(':', 1)
            key = key.strip()
        else:
            key, rest = (line.split(None, 1) + [''])[:2]
        tokens = rest.split()
        if len(key.split()) != 1:
            raise ValueError(f'{path}: line {n}: no "KEY: values" row: {raw[:60]!r}')
        name = CALIB_ALIASES.get(key, key)
        where = f'row {key!r} (line {n})'
        if not tokens:
            raise ValueError(f'{path}: {where} has no values')
        if name in out:
            raise ValueError(f'{path}: {where}: row {name!r} given twice')
        vals = _floats(path, where, tokens)
        shape = CALIB_SHAPES.get(name)
        if shape is not None:
            if vals.size != shape[0] * shape[1]:
                raise ValueError(f'{path}: {where} has {vals.size} values, expected '
                                 f'{shape[0] * shape[1]} ({shape[0]}x{shape[1]})')
            vals = vals.reshape(shape)
        out[name] = vals
    missing = [k for k in required if k not in out]
    if missing:
        raise ValueError(f'{path}: required calib row(s) {missing} missing '
                         f'(found {sorted(out)})')
    return out


def read_label(path: str) -> List[dict]:
    """KITTI ``label_2`` file -> one dict per line, in file order.

    Keys: ``type`` (str), ``truncated`` (float), ``occluded`` (int), ``alpha`` (float),
    ``bbox`` (4,) ``x1 y1 x2 y2`` pixels, ``dimensions`` (3,) in KITTI's file order
    ``h w l`` metres, ``location`` (3,) ``x y z`` camera frame (bottom centre),
    ``rotation_y`` (float), and ``score`` (float) when the line has a 16th field (result
    files). ``DontCare`` lines are returned like the others.

    Raises ValueError (file, line, problem) on: a line with another number of fields than
    15 or 16, a value that is not a number or not finite, a non-integer ``occluded``, a box
    with ``x2 < x1`` or ``y2 < y1`` (zero-area boxes are kept; the losses mask them).
    """
    objects = []
    for n, raw in enumerate(_read_text(path), start=1):
        fields = raw.split()
        if not fields:
            continue
        where = f'line {n}'
        if len(fields) not in (LABEL_FIELDS, LABEL_FIELDS + 1):
            raise ValueError(f'{path}: {where} has {len(fields)} fields, expected '
                             f'{LABEL_FIELDS} (or {LABEL_FIELDS + 1} with a score)')
        vals = _floats(path, where, fields[1:])
        occ = vals[1]
        if occ != math.floor(occ):
            raise ValueError(f'{path}: {where}: occluded {fields[2]!r} is not an integer')
        bbox = vals[3:7]
        if bbox[2] < bbox[0] or bbox[3] < bbox[1]:
            raise ValueError(f'{path}: {where}: 2D box {fields[4:8]} has x2 < x1 or y2 < y1')
        obj = dict(type=fields[0], truncated=float(vals[0]), occluded=int(occ),
                   alpha=float(vals[2]), bbox=bbox.copy(), dimensions=vals[7:10].copy(),
                   location=vals[10:13].copy(), rotation_y=float(vals[13]))
        if len(fields) == LABEL_FIELDS + 1:
            obj['score'] = float(vals[14])
        objects.append(obj)
    return objects


def read_intrinsics(path: str) -> np.ndarray:
    """Camera projection from a file: a KITTI calib txt (its ``P2``, 3x4), or a text file with
    the 9, 12 or 16 numbers of a row-major 3x3, 3x4 or 4x4 matrix (any whitespace/commas).

    Raises FileNotFoundError (missing file) or ValueError naming the file and the problem."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'intrinsics file {path} not found')
    with open(path, 'rb') as f:
        text = f.read().decode('utf-8', errors='replace')
    if ':' in text:  # KITTI calib ("P2: ..." rows)
        return read_calib(path)['P2']
    tokens = text.replace(',', ' ').replace('[', ' ').replace(']', ' ').split()
    try:
        vals = np.array([float(t) for t in tokens], dtype=np.float64)
    except ValueError:
        raise ValueError(f'{path}: not a KITTI calib file (no "P2:" row) nor a matrix of '
                         'numbers') from None
    shapes = {9: (3, 3), 12: (3, 4), 16: (4, 4)}
    if vals.size not in shapes:
        raise ValueError(f'{path}: {vals.size} numbers; expected 9, 12 or 16 (a row-major '
                         '3x3, 3x4 or 4x4 projection) or a KITTI calib file')
    if not np.isfinite(vals).all():
        raise ValueError(f'{path}: non-finite value in the matrix')
    P = vals.reshape(shapes[vals.size])
    if P[0, 0] <= 0 or P[1, 1] <= 0:
        raise ValueError(f'{path}: focal lengths P[0,0]={P[0, 0]}, P[1,1]={P[1, 1]} must be '
                         'positive (is it a projection matrix?)')
    return P


# ----------------------------------------------------------------------------------------
# writers (the inverse of the parsers above)
# ----------------------------------------------------------------------------------------
CALIB_KEYS = tuple(CALIB_SHAPES)  # the order of KITTI's calib files


def calib_text(calib: Dict[str, np.ndarray]) -> str:
    """KITTI's calib/xxxxxx.txt: one ``KEY: v1 v2 ...`` line per matrix (row-major)."""
    lines = []
    for k in CALIB_KEYS:
        vals = ' '.join(f'{v:.12e}' for v in np.asarray(calib[k], dtype=np.float64).ravel())
        lines.append(f'{k}: {vals}')
    return '\n'.join(lines) + '\n'


def calib_4x4(calib: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Every matrix of :func:`read_calib` padded to 4x4 (mmdet3d's ``extend_matrix``)."""
    out = {}
    for k, v in calib.items():
        m = np.eye(4)
        m[:v.shape[0], :v.shape[1]] = v
        out[k] = m
    return out


def label_line(name: str, truncated: float, occluded: int, alpha: float, bbox: Sequence[float],
               dims_lhw: Sequence[float], loc: Sequence[float], ry: float) -> str:
    """One KITTI label line (dimensions written h, w, l, as KITTI does)."""
    l, h, w = dims_lhw
    return (f'{name} {truncated:.2f} {int(occluded)} {alpha:.2f} '
            f'{bbox[0]:.2f} {bbox[1]:.2f} {bbox[2]:.2f} {bbox[3]:.2f} '
            f'{h:.2f} {w:.2f} {l:.2f} {loc[0]:.2f} {loc[1]:.2f} {loc[2]:.2f} {ry:.2f}')


def dontcare_line(bbox: Sequence[float]) -> str:
    return (f'DontCare -1 -1 -10 {bbox[0]:.2f} {bbox[1]:.2f} {bbox[2]:.2f} {bbox[3]:.2f} '
            '-1 -1 -1 -1000 -1000 -1000 -10')


# ----------------------------------------------------------------------------------------
# difficulty
# ----------------------------------------------------------------------------------------
# (min 2D box height in pixels, exclusive; max occlusion; max truncation) of easy, moderate,
# hard: mmdet3d's converter (add_difficulty_to_annos) and its KITTI evaluation (clean_data
# ignores a box of height <= the minimum).
DIFFICULTY_LEVELS = ((40, 0, 0.15), (25, 1, 0.30), (25, 2, 0.50))


def kitti_difficulty(height, occluded, truncated) -> np.ndarray:
    """KITTI difficulty per object: 0 easy, 1 moderate, 2 hard, -1 none (arrays or scalars)."""
    height, occluded, truncated = (np.asarray(a, dtype=np.float64)
                                   for a in (height, occluded, truncated))
    passes = [(height > min_h) & (occluded <= max_occ) & (truncated <= max_trunc)
              for min_h, max_occ, max_trunc in DIFFICULTY_LEVELS]
    return np.select(passes, [0, 1, 2], -1).astype(np.int32)


# ----------------------------------------------------------------------------------------
# depth PNGs: uint16, metres x 256, 0 = invalid
# ----------------------------------------------------------------------------------------
DEPTH_PNG_SCALE = 256.0
MAX_PNG_DEPTH = 65535 / DEPTH_PNG_SCALE


def encode_depth_png(depth: np.ndarray) -> np.ndarray:
    """Metres -> KITTI uint16 ``max(1, round(d * 256))`` (a valid depth never becomes 0);
    invalid, non-finite or > 255.99 m -> 0."""
    d = np.asarray(depth, dtype=np.float64)
    ok = np.isfinite(d) & (d > 0) & (d <= MAX_PNG_DEPTH)
    code = np.maximum(np.round(np.where(ok, d, 0.0) * DEPTH_PNG_SCALE), 1)
    return np.where(ok, code, 0).astype(np.uint16)


def decode_depth_png(raw: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_depth_png`: float32 metres, 0 = invalid."""
    return raw.astype(np.float32) / DEPTH_PNG_SCALE


# ----------------------------------------------------------------------------------------
# atomic writes: a temporary name in the same folder, then os.replace (an interruption
# leaves the old file or none, never half of one)
# ----------------------------------------------------------------------------------------
def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` never holds a half-written file."""
    d = osp.dirname(path) or '.'
    fd, tmp = tempfile.mkstemp(dir=d, prefix='.' + osp.basename(path) + '.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str, text: str) -> None:
    atomic_write_bytes(path, text.encode('utf-8'))


def atomic_write_pickle(path: str, obj) -> None:
    atomic_write_bytes(path, pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return (struct.pack('>I', len(data)) + tag + data
            + struct.pack('>I', zlib.crc32(tag + data) & 0xffffffff))


def png_bytes(image: np.ndarray) -> bytes:
    """Encode a uint8 (H, W) / (H, W, 3) RGB or uint16 (H, W) image as PNG.

    Written by hand for speed (the generator's bottleneck): one PNG filter for all rows
    (``Sub`` for RGB, ``Up`` for 16-bit depth) and Huffman-only deflate; 1.5-2.5x faster than
    OpenCV's adaptive filtering on these noisy images, at a similar size. Any PNG reader
    decodes it (tests check the round trip through OpenCV).
    """
    if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        raw, depth_bits, color_type, bpp, filt = image.reshape(image.shape[0], -1), 8, 2, 3, 1
    elif image.dtype == np.uint8 and image.ndim == 2:
        raw, depth_bits, color_type, bpp, filt = image, 8, 0, 1, 1
    elif image.dtype == np.uint16 and image.ndim == 2:
        raw = image.astype('>u2').view(np.uint8).reshape(image.shape[0], -1)
        depth_bits, color_type, bpp, filt = 16, 0, 2, 2
    else:
        raise ValueError(f'png_bytes: unsupported image {image.dtype} {image.shape}')
    h, w = image.shape[:2]
    f = np.empty((h, raw.shape[1] + 1), np.uint8)
    f[:, 0] = filt
    if filt == 1:   # Sub: byte minus the byte one pixel to the left (mod 256)
        f[:, 1:bpp + 1] = raw[:, :bpp]
        np.subtract(raw[:, bpp:], raw[:, :-bpp], out=f[:, bpp + 1:])
    else:           # Up: byte minus the byte one row above (mod 256)
        f[0, 1:] = raw[0]
        np.subtract(raw[1:], raw[:-1], out=f[1:, 1:])
    comp = zlib.compressobj(1, zlib.DEFLATED, 15, 8, zlib.Z_HUFFMAN_ONLY)
    idat = comp.compress(f.tobytes()) + comp.flush()
    ihdr = struct.pack('>IIBBBBB', w, h, depth_bits, color_type, 0, 0, 0)
    return (b'\x89PNG\r\n\x1a\n' + _png_chunk(b'IHDR', ihdr) + _png_chunk(b'IDAT', idat)
            + _png_chunk(b'IEND', b''))


def atomic_write_png(path: str, image: np.ndarray) -> None:
    """PNG (RGB uint8 images are given in RGB order; depth maps uint16, one channel)."""
    atomic_write_bytes(path, png_bytes(np.ascontiguousarray(image)))
