"""Strict parsers of KITTI's text files: ``calib/xxxxxx.txt`` and ``label_2/xxxxxx.txt``.

mmdet3d reads these only inside its converter script (``tools/dataset_converters/
kitti_data_utils.py``, not importable from the installed package), which accepts malformed
rows silently (a short row becomes a wrongly shaped matrix; ``nan`` passes). These parsers
raise ``ValueError`` naming the file, the row or line, and the problem. A missing file raises
the usual ``FileNotFoundError`` (its message holds the path).
"""
import math
from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np

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
