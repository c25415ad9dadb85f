"""Property-based tests (hypothesis): the depth loader, the KITTI calib / label parsers and the
pseudo-point extraction, over random and corrupted inputs."""
import os.path as osp
import tempfile

import cv2
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mmdet3d_skd.datasets.kitti_format import CALIB_ALIASES, CALIB_SHAPES, read_calib, read_label
from mmdet3d_skd.datasets.transforms import LoadDepthMap
from mmdet3d_skd.models.pseudo_points import extract_pseudo_points

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
shapes = st.tuples(st.integers(1, 12), st.integers(1, 12))


# ------------------------------------------------------------------------ depth loader
def load_depth(tmp, name, shape):
    out = LoadDepthMap(depth_prefix=tmp)(
        dict(img=np.zeros((*shape, 3), np.uint8), depth_path=name, sample_idx=0))
    return out['depth_map'], out['depth_invalid_fraction']


@st.composite
def float_maps(draw):
    dtype = draw(st.sampled_from([np.float16, np.float32, np.float64]))
    width = {np.float16: 16, np.float32: 32, np.float64: 64}[dtype]
    return draw(arrays(dtype, draw(shapes), elements=st.floats(width=width)))


@settings(max_examples=40, **SETTINGS)
@given(depth=float_maps(), fmt=st.sampled_from(['npy', 'npz']))
def test_depth_loader_float_files(depth, fmt):
    """Loaded map: float32, the file's shape, finite, >= 0; NaN / inf / negative (and values
    beyond float32) -> 0; every other value kept as float32."""
    with tempfile.TemporaryDirectory() as tmp:
        name = f'd.{fmt}'
        if fmt == 'npy':
            np.save(osp.join(tmp, name), depth)
        else:
            np.savez(osp.join(tmp, name), depth=depth)
        got, frac = load_depth(tmp, name, depth.shape)
    with np.errstate(over='ignore', invalid='ignore'):
        f32 = depth.astype(np.float32)
        ok = np.isfinite(f32) & (f32 >= 0)
    assert got.dtype == np.float32 and got.shape == depth.shape
    assert np.isfinite(got).all() and (got >= 0).all()
    np.testing.assert_array_equal(got, np.where(ok, f32, np.float32(0)))
    assert frac == pytest.approx((~ok).sum() / depth.size)


@settings(max_examples=30, **SETTINGS)
@given(depth=shapes.flatmap(lambda s: arrays(np.uint16, s)))
def test_depth_loader_png(depth):
    """uint16 PNG: metres = value / 256 exactly, 0 stays invalid."""
    with tempfile.TemporaryDirectory() as tmp:
        cv2.imwrite(osp.join(tmp, 'd.png'), depth)
        got, frac = load_depth(tmp, 'd.png', depth.shape)
    assert got.dtype == np.float32 and got.shape == depth.shape
    np.testing.assert_array_equal(got, depth.astype(np.float32) / 256)
    assert frac == 0.0


# ---------------------------------------------------------------------------- calib
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
ALIAS_OF = {v: k for k, v in CALIB_ALIASES.items()}


@st.composite
def calib_files(draw):
    """(text, {canonical name: matrix}): KITTI calib rows in any order, P2 always present,
    KITTI's alternative spellings, with or without colons, and blank lines."""
    names = ['P2'] + draw(st.lists(st.sampled_from([k for k in CALIB_SHAPES if k != 'P2']),
                                   unique=True))
    names = draw(st.permutations(names))
    calib, lines = {}, []
    for name in names:
        m = draw(arrays(np.float64, CALIB_SHAPES[name], elements=finite))
        calib[name] = m
        key = ALIAS_OF[name] if name in ALIAS_OF and draw(st.booleans()) else name
        sep = ':' if draw(st.booleans()) else ''
        lines.append(f'{key}{sep} ' + ' '.join(repr(float(v)) for v in m.ravel()))
        lines += [''] * draw(st.integers(0, 1))
    return '\n'.join(lines) + '\n' * draw(st.integers(0, 2)), calib


def write(tmp, text, name='c.txt'):
    path = osp.join(tmp, name)
    with open(path, 'w') as f:
        f.write(text)
    return path


@settings(max_examples=40, **SETTINGS)
@given(case=calib_files())
def test_calib_round_trip(case):
    text, calib = case
    with tempfile.TemporaryDirectory() as tmp:
        got = read_calib(write(tmp, text), required=list(calib))
    assert set(got) == set(calib)
    for k, m in calib.items():
        assert got[k].dtype == np.float64
        np.testing.assert_array_equal(got[k], m)


NOT_A_NUMBER = st.text(alphabet='abcxyz#!,%', min_size=1, max_size=5)


@st.composite
def corrupted_calibs(draw):
    """A well-formed calib file with one fault that must be refused."""
    text, calib = draw(calib_files())
    rows = [ln for ln in text.splitlines() if ln.strip()]
    i = draw(st.integers(0, len(rows) - 1))
    key, *vals = rows[i].split()
    kind = draw(st.sampled_from(['drop value', 'extra value', 'not a number', 'non-finite',
                                 'no P2', 'duplicate']))
    j = draw(st.integers(0, len(vals) - 1))
    if kind == 'drop value':
        vals.pop(j)
    elif kind == 'extra value':
        vals.insert(j, '1.0')
    elif kind == 'not a number':
        vals[j] = draw(NOT_A_NUMBER)
    elif kind == 'non-finite':
        vals[j] = draw(st.sampled_from(['nan', 'inf', '-inf', 'NaN', '1e999']))
    if kind == 'no P2':
        rows = [r for r in rows if r.split()[0].rstrip(':') != 'P2']
    elif kind == 'duplicate':
        rows.insert(draw(st.integers(0, len(rows))), rows[i])
    else:
        rows[i] = ' '.join([key, *vals])
    return '\n'.join(rows) + '\n', kind


@settings(max_examples=50, **SETTINGS)
@given(case=corrupted_calibs())
def test_corrupted_calib_is_a_value_error_naming_the_file(case):
    text, kind = case
    with tempfile.TemporaryDirectory() as tmp:
        path = write(tmp, text, '000123.txt')
        with pytest.raises(ValueError) as e:
            read_calib(path)
    assert path in str(e.value)


@settings(max_examples=50, **SETTINGS)
@given(data=st.one_of(st.binary(max_size=300),
                      st.text(max_size=300).map(lambda t: t.encode('utf-8', 'surrogatepass'))))
def test_calib_on_any_bytes_returns_a_valid_dict_or_raises_value_error(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'c.txt')
        with open(path, 'wb') as f:
            f.write(data)
        try:
            got = read_calib(path, required=())
        except ValueError as e:
            assert path in str(e)
            return
    for k, m in got.items():
        assert np.isfinite(m).all() and m.dtype == np.float64
        if k in CALIB_SHAPES:
            assert m.shape == CALIB_SHAPES[k]


# ---------------------------------------------------------------------------- labels
small = st.floats(-1e6, 1e6, allow_nan=False)


@st.composite
def label_objects(draw):
    x1, x2 = sorted(draw(st.lists(small, min_size=2, max_size=2)))
    y1, y2 = sorted(draw(st.lists(small, min_size=2, max_size=2)))
    obj = dict(type=draw(st.sampled_from(['Car', 'Pedestrian', 'Cyclist', 'Van', 'DontCare',
                                          'Misc', 'Person_sitting'])),
               truncated=draw(small), occluded=draw(st.integers(-1, 3)), alpha=draw(small),
               bbox=[x1, y1, x2, y2], dimensions=draw(st.lists(small, min_size=3, max_size=3)),
               location=draw(st.lists(small, min_size=3, max_size=3)),
               rotation_y=draw(small))
    if draw(st.booleans()):
        obj['score'] = draw(small)
    return obj


def label_line(o):
    nums = [o['truncated'], o['occluded'], o['alpha'], *o['bbox'], *o['dimensions'],
            *o['location'], o['rotation_y']] + ([o['score']] if 'score' in o else [])
    return ' '.join([o['type']] + [repr(v) for v in nums])


@settings(max_examples=40, **SETTINGS)
@given(objs=st.lists(label_objects(), max_size=6))
def test_label_round_trip(objs):
    with tempfile.TemporaryDirectory() as tmp:
        got = read_label(write(tmp, ''.join(label_line(o) + '\n' for o in objs)))
    assert len(got) == len(objs)
    for g, o in zip(got, objs):
        assert set(g) == set(o)
        for k, v in o.items():
            if isinstance(v, list):
                np.testing.assert_array_equal(g[k], v)
            else:
                assert g[k] == v and type(g[k]) is type(v)


@st.composite
def corrupted_labels(draw):
    objs = draw(st.lists(label_objects(), min_size=1, max_size=4))
    lines = [label_line(o) for o in objs]
    i = draw(st.integers(0, len(lines) - 1))
    fields = lines[i].split()
    kind = draw(st.sampled_from(['drop field', 'extra fields', 'not a number', 'non-finite',
                                 'fractional occluded', 'inverted box']))
    j = draw(st.integers(1, len(fields) - 1))
    if kind == 'drop field':
        while len(fields) > 14:
            fields.pop(draw(st.integers(1, len(fields) - 1)))
    elif kind == 'extra fields':
        fields += ['0.5'] * (17 - len(fields) + draw(st.integers(0, 2)))
    elif kind == 'not a number':
        fields[j] = draw(NOT_A_NUMBER)
    elif kind == 'non-finite':
        fields[j] = draw(st.sampled_from(['nan', 'inf', '-inf', '1e999']))
    elif kind == 'fractional occluded':
        fields[2] = repr(draw(st.integers(-1, 3)) + draw(st.sampled_from([0.5, 0.25, -0.1])))
    else:
        x1, x2 = float(fields[4]), float(fields[6])
        assume(x1 != x2)
        fields[4], fields[6] = fields[6], fields[4]
    lines[i] = ' '.join(fields)
    return '\n'.join(lines) + '\n', i + 1


@settings(max_examples=50, **SETTINGS)
@given(case=corrupted_labels())
def test_corrupted_label_is_a_value_error_naming_file_and_line(case):
    text, line_no = case
    with tempfile.TemporaryDirectory() as tmp:
        path = write(tmp, text, '000321.txt')
        with pytest.raises(ValueError) as e:
            read_label(path)
    assert path in str(e.value) and f'line {line_no}' in str(e.value)


@settings(max_examples=50, **SETTINGS)
@given(data=st.one_of(st.binary(max_size=300),
                      st.lists(st.text(alphabet='0123456789.-e naCr\t', max_size=12),
                               min_size=14, max_size=17).map(lambda f: ' '.join(f).encode())))
def test_label_on_any_bytes_returns_objects_or_raises_value_error(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'l.txt')
        with open(path, 'wb') as f:
            f.write(data)
        try:
            got = read_label(path)
        except ValueError as e:
            assert path in str(e)
            return
    for o in got:
        for k in ('bbox', 'dimensions', 'location'):
            assert np.isfinite(o[k]).all()
        assert o['bbox'][2] >= o['bbox'][0] and o['bbox'][3] >= o['bbox'][1]


# -------------------------------------------------------------------- pseudo points
MIN_DEPTH, MAX_DEPTH = 0.5, 150.0
depth_values = st.one_of(st.just(0.0), st.just(float('nan')), st.just(float('inf')),
                         st.just(-float('inf')), st.floats(-50, 0, width=32),
                         st.floats(0.125, 200.0, width=32))
coords = st.one_of(st.floats(-40, 100), st.just(float('nan')), st.just(float('inf')))


@st.composite
def pseudo_inputs(draw):
    h, w = draw(st.integers(4, 24)), draw(st.integers(4, 40))
    depth = draw(arrays(np.float32, (h, w), elements=depth_values.map(np.float32)))
    if draw(st.booleans()):  # a plausible object patch, so that valid instances occur
        d = draw(st.floats(2.0, 60.0))
        depth[h // 4:h - 1, w // 4:w // 2 + 1] = d
    f = draw(st.floats(10.0, 300.0))
    P = np.array([[f, 0, draw(st.floats(0, w)), draw(st.floats(-50, 50))],
                  [0, f, draw(st.floats(0, h)), draw(st.floats(-1, 1))],
                  [0, 0, 1, draw(st.floats(-0.01, 0.01))]], dtype=np.float32)
    n = draw(st.integers(0, 5))
    boxes = []
    for _ in range(n):
        if draw(st.booleans()):
            boxes.append([w // 4, h // 4, w // 2 + 1, h - 1])  # on the object patch
        else:
            boxes.append([draw(coords) for _ in range(4)])  # anything: empty, outside, NaN
    return (torch.from_numpy(depth), torch.from_numpy(P),
            torch.tensor(boxes, dtype=torch.float32).reshape(n, 4))


@settings(max_examples=40, **SETTINGS)
@given(inp=pseudo_inputs(), num_points=st.integers(1, 12), min_points=st.integers(1, 8))
def test_pseudo_points_finite_and_consistent(inp, num_points, min_points):
    depth, P, boxes = inp
    pp = extract_pseudo_points(depth, P, boxes, num_points=num_points, min_points=min_points,
                               min_depth=MIN_DEPTH, max_depth=MAX_DEPTH)
    n = boxes.shape[0]
    assert pp.points.shape == (n, num_points, 3) and pp.mask.shape == (n, num_points)
    for name in ('points', 'surface_depth', 'depth_target', 'extent', 'yaw_obs', 'yaw_conf',
                 'ground_plane'):
        assert torch.isfinite(getattr(pp, name)).all(), name
    valid, mask = pp.valid, pp.mask
    # valid <=> enough surface pixels; only valid instances carry points or targets
    assert torch.equal(valid, pp.num_valid >= min_points)
    assert not mask[~valid].any()
    assert (pp.depth_target[~valid] == 0).all() and (pp.yaw_conf[~valid] == 0).all()
    assert (mask.sum(-1)[valid] >= min(min_points, num_points)).all()
    assert (pp.points[~mask] == 0).all()
    # real points lie at a valid depth of the map; targets lie beyond the nearest surface
    z = pp.points[mask][:, 2]
    assert ((z >= MIN_DEPTH - 1e-3) & (z <= MAX_DEPTH + 1e-3)).all()
    assert (pp.depth_target[valid] >= pp.surface_depth[valid] - 1e-4).all()
    assert (pp.surface_depth[valid] >= MIN_DEPTH - 1e-3).all()
    assert ((pp.yaw_conf >= 0) & (pp.yaw_conf <= 1)).all()
    if n:
        normal = pp.ground_plane[:, :3]
        torch.testing.assert_close(normal.norm(dim=-1), torch.ones(n), rtol=0, atol=1e-4)
        assert (normal[:, 1] < 0).all()
