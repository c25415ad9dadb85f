"""Depth loading, depth-aware flip / affine / resize, and packing."""
import os.path as osp
import random

import cv2
import numpy as np
import pytest
import torch

from mmdet3d.datasets.transforms import RandomShiftScale
from mmdet3d.structures import CameraInstance3DBoxes
from mmdet3d_skd.datasets.transforms import (DepthAffineResize, DepthRandomFlip3D, DepthResize3D,
                                             LoadDepthMap, PackSKDInputs, RandomScaleCrop,
                                             affine_cam2img, flip_cam2img)

H, W = 48, 64
# KITTI-P2-like projection with a non-zero translation column.
P2 = np.array([[50.0, 0.0, 30.3, 4.5],
               [0.0, 50.0, 22.7, -0.3],
               [0.0, 0.0, 1.0, 0.005],
               [0.0, 0.0, 0.0, 1.0]])


def project(P, xyz):
    P = np.asarray(P, dtype=np.float64)[:3]
    p = P[:, :3] @ np.asarray(xyz, dtype=np.float64)
    if P.shape[1] == 4:
        p = p + P[:, 3]
    return p[:2] / p[2]


def backproject(P, u, v, z):
    """The camera point at depth ``z`` that ``P`` projects to ``(u, v)``."""
    P = np.asarray(P, dtype=np.float64)[:3]
    # rows 0/1 of (P @ [x, y, z, 1]) = (u, v) * (row 2), linear in (x, y)
    A = P[:2, :2] - np.outer([u, v], P[2, :2])
    b = np.array([u, v]) * (P[2, 2] * z + P[2, 3]) - P[:2, 2] * z - P[:2, 3]
    return np.append(np.linalg.solve(A, b), z)


def write_depth_png(path, depth_m):
    cv2.imwrite(str(path), np.round(depth_m * 256).astype(np.uint16))


# ----------------------------------------------------------------- loading
def test_png_depth_in_derived_folder(tmp_path):
    img_dir = tmp_path / 'training' / 'image_2'
    dep_dir = tmp_path / 'training' / 'depth_2'
    img_dir.mkdir(parents=True)
    dep_dir.mkdir(parents=True)
    depth = np.zeros((H, W), np.float32)
    depth[10:20, 5:15] = 12.5  # 3200 / 256
    write_depth_png(dep_dir / '000001.png', depth)
    results = dict(
        img=np.zeros((H, W, 3), np.uint8),
        img_path=str(img_dir / '000001.jpg'),
        sample_idx=1)
    out = LoadDepthMap()(results)
    assert out['depth_path'] == str(dep_dir / '000001.png')
    assert out['depth_map'].dtype == np.float32
    np.testing.assert_array_equal(out['depth_map'], depth)
    assert out['depth_invalid_fraction'] == 0.0


def test_depth_path_from_info_with_prefix(tmp_path):
    depth = np.full((H, W), 3.0, np.float32)
    np.save(tmp_path / 'd7.npy', depth)
    results = dict(
        img=np.zeros((H, W, 3), np.uint8),
        img_path='/nowhere/image_2/000007.png',
        images=dict(CAM2=dict(depth_path='d7.npy')))
    out = LoadDepthMap(depth_prefix=str(tmp_path))(results)
    assert out['depth_path'] == osp.join(str(tmp_path), 'd7.npy')
    np.testing.assert_array_equal(out['depth_map'], depth)


def test_npz_key_and_single_array(tmp_path):
    a = np.random.rand(H, W).astype(np.float64) * 40
    np.savez(tmp_path / 'k.npz', depth=a, other=a * 0)
    np.savez(tmp_path / 's.npz', anything=a[None])  # (1, H, W) squeezed
    np.savez(tmp_path / 'm.npz', a=a, b=a)
    base = dict(img=np.zeros((H, W, 3), np.uint8))
    t = LoadDepthMap(depth_prefix=str(tmp_path))
    out = t(dict(base, depth_path='k.npz'))
    np.testing.assert_allclose(out['depth_map'], a.astype(np.float32))
    out = t(dict(base, depth_path='s.npz'))
    np.testing.assert_allclose(out['depth_map'], a.astype(np.float32))
    with pytest.raises(KeyError, match='m.npz'):
        t(dict(base, depth_path='m.npz'))


def test_missing_and_broken_files(tmp_path):
    base = dict(img=np.zeros((H, W, 3), np.uint8), sample_idx=42)
    t = LoadDepthMap(depth_prefix=str(tmp_path))
    missing = osp.join(str(tmp_path), 'nope.png')
    with pytest.raises(FileNotFoundError) as e:
        t(dict(base, depth_path='nope.png'))
    assert missing in str(e.value) and 'sample_idx=42' in str(e.value)

    good = cv2.imencode('.png', np.ones((H, W), np.uint16))[1].tobytes()
    (tmp_path / 'trunc.png').write_bytes(good[:len(good) // 3])
    with pytest.raises(ValueError, match='trunc.png'):
        t(dict(base, depth_path='trunc.png'))

    cv2.imwrite(str(tmp_path / 'u8.png'), np.ones((H, W), np.uint8))
    with pytest.raises(ValueError, match='uint8'):
        t(dict(base, depth_path='u8.png'))

    np.save(tmp_path / 'rgb.npy', np.ones((H, W, 3), np.float32))
    with pytest.raises(ValueError, match='shape'):
        t(dict(base, depth_path='rgb.npy'))
    np.save(tmp_path / 'int.npy', np.ones((H, W), np.int32))
    with pytest.raises(ValueError, match='int32'):
        t(dict(base, depth_path='int.npy'))
    (tmp_path / 'bad.npy').write_bytes(b'\x93NUMPY garbage')
    with pytest.raises(ValueError, match='bad.npy'):
        t(dict(base, depth_path='bad.npy'))


def test_size_mismatch_error_or_nearest_resize(tmp_path):
    small = np.zeros((H // 2, W // 2), np.float32)
    small[:, :W // 4] = 5.0
    small[:, W // 4:] = 9.0
    np.save(tmp_path / 'small.npy', small)
    base = dict(img=np.zeros((H, W, 3), np.uint8), depth_path='small.npy')
    with pytest.raises(ValueError, match=r'small.npy.*24x32.*48x64'):
        LoadDepthMap(depth_prefix=str(tmp_path))(dict(base))
    out = LoadDepthMap(depth_prefix=str(tmp_path), mismatch='resize')(base)
    assert out['depth_map'].shape == (H, W)
    # nearest: no interpolated depths at the 5 m / 9 m edge
    assert set(np.unique(out['depth_map'])) == {5.0, 9.0}
    assert (out['depth_map'][:, :W // 2] == 5.0).all()


def test_nan_inf_negative_become_invalid(tmp_path):
    d = np.full((4, 5), 2.0, np.float32)
    d[0, 0], d[1, 1], d[2, 2], d[3, 3] = np.nan, np.inf, -1.0, -np.inf
    np.save(tmp_path / 'x.npy', d)
    out = LoadDepthMap(depth_prefix=str(tmp_path))(
        dict(img=np.zeros((4, 5, 3), np.uint8), depth_path='x.npy'))
    dm = out['depth_map']
    assert np.isfinite(dm).all() and (dm >= 0).all()
    assert dm[0, 0] == dm[1, 1] == dm[2, 2] == dm[3, 3] == 0.0
    assert (dm > 0).sum() == 16
    assert out['depth_invalid_fraction'] == pytest.approx(4 / 20)

    np.save(tmp_path / 'z.npy', np.zeros((4, 5), np.float32))
    out = LoadDepthMap(depth_prefix=str(tmp_path))(
        dict(img=np.zeros((4, 5, 3), np.uint8), depth_path='z.npy'))
    assert (out['depth_map'] == 0).all()
    assert out['depth_invalid_fraction'] == 0.0


def test_bad_arguments():
    with pytest.raises(ValueError, match='mismatch'):
        LoadDepthMap(mismatch='crop')
    with pytest.raises(ValueError, match='img_dir'):
        LoadDepthMap()(dict(img_path='/data/cam/0.png'))


# --------------------------------------------------------- camera algebra
def test_flip_cam2img_mirrors_the_scene_exactly():
    rng = np.random.default_rng(0)
    for P in (P2, P2[:3], P2[:3, :3]):
        Pf = flip_cam2img(P, W, H, 'horizontal')
        assert Pf.shape == P.shape
        for xyz in rng.uniform([-5, -2, 4], [5, 2, 30], (5, 3)):
            u, v = project(P, xyz)
            uf, vf = project(Pf, xyz * [-1, 1, 1])
            assert uf == pytest.approx(W - u) and vf == pytest.approx(v)
    Pf = flip_cam2img(P2, W, H)
    assert Pf[0, 2] == pytest.approx(W - P2[0, 2])
    assert Pf[0, 3] == pytest.approx(W * P2[2, 3] - P2[0, 3])
    Pv = flip_cam2img(P2, W, H, 'vertical')
    u, v = project(P2, [1.0, 0.5, 9.0])
    assert project(Pv, [1.0, -0.5, 9.0]) == pytest.approx([u, H - v])


def test_affine_cam2img_composes():
    A = np.array([[0.5, 0.0, 3.0], [0.0, 0.5, -2.0], [0.0, 0.0, 1.0]])
    xyz = np.array([1.0, 0.7, 11.0])
    u, v = project(P2, xyz)
    assert project(affine_cam2img(P2, A), xyz) == pytest.approx(
        [0.5 * u + 3.0, 0.5 * v - 2.0])


# ------------------------------------------------------ scene for alignment
def make_scene(P=P2):
    """Image with a bright rectangle (depth 20 m) and one marked pixel where
    the 3D point ``XYZ`` projects (floor of the continuous pixel)."""
    img = np.zeros((H, W, 3), np.uint8)
    depth = np.zeros((H, W), np.float32)
    img[8:20, 36:52] = 255
    depth[8:20, 36:52] = 20.0
    xyz = backproject(P, 23.5, 26.5, 9.0)  # the centre of pixel (23, 26)
    u, v = project(P, xyz)
    img[int(v), int(u)] = (0, 0, 200)  # mark in the red channel only
    depth[int(v), int(u)] = xyz[2]
    return img, depth, xyz


def results_of(img, depth, P=P2, **extra):
    r = dict(
        img=img.copy(),
        img_shape=img.shape[:2],
        ori_shape=img.shape[:2],
        depth_map=depth.copy(),
        cam2img=[list(row) for row in P],
        img_path='synthetic.png',
        sample_idx=0,
        box_type_3d=CameraInstance3DBoxes)
    r.update(extra)
    return r


def test_flip_moves_depth_image_boxes_and_cam2img_together():
    img, depth, xyz = make_scene()
    boxes = np.array([[36.0, 8.0, 52.0, 20.0], [0.0, 1.0, 5.0, 9.0]],
                     np.float32)
    r = results_of(img, depth, gt_bboxes=boxes.copy(),
                   gt_bboxes_labels=np.array([2, 0]))
    out = DepthRandomFlip3D(flip_ratio_bev_horizontal=1.0)(r)
    assert out['flip'] is True and out['flip_direction'] == 'horizontal'
    bright = out['img'][..., 0] == 255
    np.testing.assert_array_equal(bright, out['depth_map'] == 20.0)
    np.testing.assert_array_equal(bright[8:20, W - 52:W - 36], True)
    np.testing.assert_allclose(out['gt_bboxes'],
                               [[W - 52, 8, W - 36, 20], [W - 5, 1, W, 9]])
    # the mirrored point projects with the new cam2img onto the mark
    u, v = project(out['cam2img'], xyz * [-1, 1, 1])
    mark = np.argwhere(out['img'][..., 2] == 200)
    assert mark.tolist() == [[int(v), int(u)]]
    assert out['depth_map'][int(v), int(u)] == pytest.approx(xyz[2])


def test_no_flip_leaves_everything():
    img, depth, _ = make_scene()
    out = DepthRandomFlip3D(flip_ratio_bev_horizontal=0.0)(
        results_of(img, depth))
    assert out['flip'] is False
    np.testing.assert_array_equal(out['depth_map'], depth)
    np.testing.assert_allclose(np.array(out['cam2img']), P2)


def test_flip_with_3d_boxes_keeps_projection_consistent():
    img, depth, _ = make_scene()
    box = CameraInstance3DBoxes(
        torch.tensor([[2.0, 1.5, 15.0, 4.0, 1.5, 1.7, 0.3]]))
    u, v = project(P2, box.gravity_center[0].numpy())
    r = results_of(img, depth, gt_bboxes_3d=box,
                   gt_labels_3d=np.array([2]), centers_2d=np.array([[u, v]]))
    out = DepthRandomFlip3D(flip_ratio_bev_horizontal=1.0)(r)
    c = out['gt_bboxes_3d'].gravity_center[0].numpy()
    assert c[0] == pytest.approx(-2.0)
    assert project(out['cam2img'], c) == pytest.approx([W - u, v], abs=1e-4)
    assert out['centers_2d'][0] == pytest.approx([W - u, v], abs=1e-4)


def test_flip_rejects_unsynced():
    with pytest.raises(ValueError, match='sync_2d'):
        DepthRandomFlip3D(sync_2d=False, flip_ratio_bev_horizontal=0.5)


def blob_center(mask):
    """Mean continuous coordinate of a pixel set (pixel i spans [i, i+1))."""
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()]) + 0.5


def test_affine_resize_aligns_depth_image_and_cam2img():
    img, depth, xyz = make_scene()
    # A bigger mark so that it survives the linear down-sampling.
    u, v = project(P2, xyz)
    img[int(v) - 2:int(v) + 3, int(u) - 2:int(u) + 3] = (0, 0, 200)
    depth[int(v) - 2:int(v) + 3, int(u) - 2:int(u) + 3] = xyz[2]
    boxes = np.array([[36.0, 8.0, 52.0, 20.0], [0.0, 0.0, 2.0, 3.0]],
                     np.float32)
    r = results_of(img, depth, gt_bboxes=boxes.copy(),
                   gt_bboxes_labels=np.array([2, 1]))
    # what RandomShiftScale records: shifted centre, enlarged size
    r['center'] = np.array([W / 2 + 12, H / 2 - 4.8], np.float32)
    r['size'] = np.array([W * 1.2, H * 1.2], np.float32)
    out_w, out_h = 56, 42
    out = DepthAffineResize(img_scale=(out_w, out_h), down_ratio=4)(r)
    assert out['img'].shape[:2] == out['depth_map'].shape == (out_h, out_w)
    np.testing.assert_allclose(out['ori_cam2img'], P2)
    # the depth map's 20 m region is the image's bright region
    bright = out['img'][..., 0] > 127
    near = out['depth_map'] == 20.0
    assert bright.sum() > 20
    assert (bright & near).sum() / (bright | near).sum() > 0.8
    # the warped depth holds only the original values (nearest, border 0)
    assert set(np.unique(out['depth_map'])) <= {0.0, 20.0, float(xyz[2])}
    # the 3D point projects, through the new cam2img, onto the warped mark
    mark = (out['img'][..., 2] > 100) & (out['img'][..., 0] < 100)
    uv = project(out['cam2img'], xyz)
    assert np.abs(blob_center(mark) - uv).max() < 1.0
    assert np.abs(blob_center(out['depth_map'] == xyz[2]) - uv).max() < 1.0
    # the first box follows the bright region; the second one, outside the
    # output after the shift, became degenerate and is dropped with its label
    assert len(out['gt_bboxes']) == 1
    np.testing.assert_array_equal(out['gt_bboxes_labels'], [2])
    ys, xs = np.nonzero(bright)
    np.testing.assert_allclose(
        out['gt_bboxes'][0], [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1],
        atol=1.0)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_random_shift_scale_then_affine_keeps_alignment(seed):
    random.seed(seed)
    img, depth, xyz = make_scene()
    u, v = project(P2, xyz)
    img[int(v) - 2:int(v) + 3, int(u) - 2:int(u) + 3] = (0, 0, 200)
    r = RandomShiftScale(shift_scale=(0.1, 0.2), aug_prob=1.0)(
        results_of(img, depth))
    out = DepthAffineResize(img_scale=(64, 48), down_ratio=4)(r)
    bright = out['img'][..., 0] > 127
    near = out['depth_map'] == 20.0
    assert (bright & near).sum() / max((bright | near).sum(), 1) > 0.8
    mark = (out['img'][..., 2] > 100) & (out['img'][..., 0] < 100)
    if mark.any():
        uv = project(out['cam2img'], xyz)
        assert np.abs(blob_center(mark) - uv).max() < 1.0


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_random_scale_crop_is_a_window_at_the_drawn_scale(seed):
    """The window lies inside the image, its size is the output over the drawn scale, and
    after DepthAffineResize the 3D point still projects onto its mark through cam2img."""
    np.random.seed(seed)
    img, depth, xyz = make_scene()
    u, v = project(P2, xyz)
    img[int(v) - 2:int(v) + 3, int(u) - 2:int(u) + 3] = (0, 0, 200)
    crop = RandomScaleCrop(img_scale=(32, 24), scale=(1.0, 1.5))
    r = crop(results_of(img, depth))
    w, h = r['size']
    assert 32 / 1.5 - 1e-4 <= w <= 32 + 1e-4 and abs(w / h - 32 / 24) < 1e-5
    cx, cy = r['center']
    assert w / 2 - 1e-4 <= cx <= W - w / 2 + 1e-4 and h / 2 - 1e-4 <= cy <= H - h / 2 + 1e-4
    out = DepthAffineResize(img_scale=(32, 24), down_ratio=4)(r)
    assert out['img'].shape[:2] == (24, 32) and out['depth_map'].shape == (24, 32)
    # the window maps onto the whole output: its corners land on the output's corners
    A = out['cam2img'][0][0] / P2[0, 0]
    np.testing.assert_allclose(A, 32 / w, rtol=1e-5)
    mark = (out['img'][..., 2] > 100) & (out['img'][..., 0] < 100)
    if mark.any():
        assert np.abs(blob_center(mark) - project(out['cam2img'], xyz)).max() < 1.0


def test_random_scale_crop_centres_a_window_larger_than_the_image():
    img, depth, _ = make_scene()
    r = RandomScaleCrop(img_scale=(128, 96), scale=(1.0, 1.0))(results_of(img, depth))
    np.testing.assert_allclose(r['center'], [W / 2, H / 2])
    np.testing.assert_allclose(r['size'], [128, 96])
    with pytest.raises(ValueError, match='scale'):
        RandomScaleCrop(img_scale=(32, 24), scale=(2.0, 1.0))


def test_resize3d_moves_depth_and_cam2img():
    img, depth, xyz = make_scene()
    out = DepthResize3D(scale=(128, 96), keep_ratio=False)(
        results_of(img, depth))
    assert out['depth_map'].shape == (96, 128)
    bright, near = out['img'][..., 0] > 127, out['depth_map'] == 20.0
    assert (bright & near).sum() / (bright | near).sum() > 0.9
    u, v = project(out['cam2img'], xyz)
    u0, v0 = project(P2, xyz)
    assert (u, v) == pytest.approx((2 * u0, 2 * v0))


# ------------------------------------------------------------------- pack
def test_pack_depth_map_and_meta():
    img, depth, _ = make_scene()
    r = results_of(img, depth,
                   gt_bboxes=np.array([[1, 2, 3, 4.0]], np.float32),
                   gt_bboxes_labels=np.array([1]), depth_path='d.png',
                   depth_invalid_fraction=0.25)
    packed = PackSKDInputs(keys=['img', 'gt_bboxes', 'gt_bboxes_labels'])(r)
    d = packed['inputs']['depth_map']
    assert d.dtype == torch.float32 and tuple(d.shape) == (1, H, W)
    assert torch.equal(d[0], torch.from_numpy(depth))
    assert tuple(packed['inputs']['img'].shape) == (3, H, W)
    ds = packed['data_samples']
    assert ds.depth_path == 'd.png' and ds.depth_invalid_fraction == 0.25
    np.testing.assert_allclose(np.array(ds.cam2img), P2)
    assert len(ds.gt_instances_3d.keys()) == 0
    assert ds.gt_instances.bboxes.tolist() == [[1, 2, 3, 4]]


def test_pack_without_depth_and_mismatch():
    img, depth, _ = make_scene()
    r = results_of(img, depth)
    r.pop('depth_map')
    packed = PackSKDInputs(keys=['img'])(r)
    assert 'depth_map' not in packed['inputs']
    r = results_of(img, depth[:, :W - 8])
    with pytest.raises(ValueError, match='synthetic.png'):
        PackSKDInputs(keys=['img', 'depth_map'])(r)


def test_full_pipeline_from_files(tmp_path):
    from mmcv.transforms import Compose

    from mmdet3d.datasets.transforms import LoadImageFromFileMono3D
    img, depth, xyz = make_scene()
    u, v = project(P2, xyz)
    img[int(v) - 2:int(v) + 3, int(u) - 2:int(u) + 3] = (0, 0, 200)
    (tmp_path / 'image_2').mkdir()
    (tmp_path / 'depth_2').mkdir()
    cv2.imwrite(str(tmp_path / 'image_2' / '000003.png'), img)
    write_depth_png(tmp_path / 'depth_2' / '000003.png', depth)
    path = str(tmp_path / 'image_2' / '000003.png')
    r = dict(img_path=path, sample_idx=3,
             images=dict(CAM2=dict(img_path=path, cam2img=P2.tolist())))
    pipe = Compose([
        LoadImageFromFileMono3D(),
        LoadDepthMap(),
        DepthRandomFlip3D(flip_ratio_bev_horizontal=1.0),
        DepthAffineResize(img_scale=(32, 24), down_ratio=4),
        PackSKDInputs(keys=['img']),
    ])
    packed = pipe(r)
    d = packed['inputs']['depth_map'][0].numpy()
    im = packed['inputs']['img'].permute(1, 2, 0).numpy()
    assert d.shape == im.shape[:2] == (24, 32)
    bright, near = im[..., 0] > 127, d == 20.0
    assert (bright & near).sum() / (bright | near).sum() > 0.8
    meta = packed['data_samples'].metainfo
    uv = project(meta['cam2img'], xyz * [-1, 1, 1])
    mark = (im[..., 2] > 60) & (im[..., 0] < 60)
    assert np.abs(blob_center(mark) - uv).max() < 1.0
    assert meta['depth_path'] == str(tmp_path / 'depth_2' / '000003.png')
