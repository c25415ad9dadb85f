"""Tests of the synthetic KITTI-format world (mmdet3d_skd.offline.synthetic).

The labels are checked against an independent numpy ray caster written here from the
parts' plane equations (not the numba renderer), and against mmdet3d's own box code.
"""
import json
import math
import os
import os.path as osp
import pickle
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

from mmdet3d_skd.datasets import kitti_format
from mmdet3d_skd.datasets.kitti_format import decode_depth_png
from mmdet3d_skd.offline.synthetic import generator as gen
from mmdet3d_skd.offline.synthetic import kitti_io
from mmdet3d_skd.offline.synthetic.depth_noise import apply_depth_noise
from mmdet3d_skd.offline.synthetic.world import (CLASS_SIZE_PRIORS, KITTI_P2, DepthNoiseConfig,
                                                 WorldConfig, sample_scene)

W, H = 621, 188          # about half of KITTI's resolution: fast, objects still > 15 px
SEED = 7
NUM_TRAIN, NUM_VAL = 6, 4
REAL_INFO = osp.join(osp.dirname(__file__), '..', '..', 'shared', 'data', 'kitti-real',
                     'tests', 'kitti_infos_train.pkl')


def _cfg(**kw):
    cfg = WorldConfig(width=W, height=H)
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synth'))
    summary = gen.generate(root, NUM_TRAIN, NUM_VAL, seed=SEED, width=W, height=H,
                           progress=False)
    return root, summary


@pytest.fixture(scope='module')
def exact_world(tmp_path_factory):
    """The same seed with exact depth: frames 0..2 hold the same scenes."""
    root = str(tmp_path_factory.mktemp('synth_exact'))
    gen.generate(root, 3, 0, seed=SEED, width=W, height=H, exact_depth=True, progress=False)
    return root


@pytest.fixture(scope='module')
def frames():
    cfg = _cfg()
    return [gen.make_frame(cfg, SEED, i) for i in range(NUM_TRAIN + NUM_VAL)]


# ---------------------------------------------------------------------------------------
# an independent reference ray caster
# ---------------------------------------------------------------------------------------
def _rot(ry):
    c, s = math.cos(ry), math.sin(ry)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _ray_t(obj, us, vs, P):
    """Nearest ray parameter of each pixel (us, vs) on the object (inf: miss)."""
    kinv = np.linalg.inv(P[:, :3])
    c = -kinv @ P[:, 3]
    dirs = np.stack([us, vs, np.ones_like(us)], -1).astype(np.float64) @ kinv.T
    best = np.full(us.shape, np.inf)
    R = _rot(obj.ry)
    for part in obj.parts:
        n = part.planes[:, :3] @ R.T
        d = part.planes[:, 3] + n @ obj.loc
        num = d - n @ c                       # n . (c + t dir) <= d  <=>  t (n . dir) <= num
        den = dirs @ n.T
        with np.errstate(divide='ignore', invalid='ignore'):
            t = num / den
        t_en = np.where(den < -1e-12, t, -np.inf).max(-1)
        t_ex = np.where(den > 1e-12, t, np.inf).min(-1)
        blocked = ((np.abs(den) <= 1e-12) & (num < 0)).any(-1)
        hit = (t_en <= t_ex) & (t_en > 0) & ~blocked
        best = np.where(hit & (t_en < best), t_en, best)
    return best


def _projected_rect(obj, P):
    uvw = obj.corners() @ P[:, :3].T + P[:, 3]
    uv = uvw[:, :2] / uvw[:, 2:]
    return (int(np.floor(uv[:, 0].min())), int(np.floor(uv[:, 1].min())),
            int(np.ceil(uv[:, 0].max())), int(np.ceil(uv[:, 1].max())))


def reference_render(scene, P, width, height):
    """(ids, depth, n_alone, n_alone_in) by brute force over each object's projected box."""
    zbuf = np.full((height, width), np.inf)
    ids = np.full((height, width), -1)
    n_alone, n_in = [], []
    c_z = (-np.linalg.inv(P[:, :3]) @ P[:, 3])[2]
    for oi, obj in enumerate(scene.objects):
        x0, y0, x1, y1 = _projected_rect(obj, P)
        x0, y0 = max(x0, -width), max(y0, -height)
        x1, y1 = min(x1, 2 * width - 1), min(y1, 2 * height - 1)
        vs, us = np.mgrid[y0:y1 + 1, x0:x1 + 1]
        t = _ray_t(obj, us, vs, P)
        hit = np.isfinite(t)
        inside = hit & (us >= 0) & (us < width) & (vs >= 0) & (vs < height)
        n_alone.append(int(hit.sum()))
        n_in.append(int(inside.sum()))
        uu, vv, tt = us[inside], vs[inside], t[inside]
        closer = tt < zbuf[vv, uu]
        zbuf[vv[closer], uu[closer]] = tt[closer]
        ids[vv[closer], uu[closer]] = oi
    depth = np.where(ids >= 0, c_z + zbuf, 0.0)   # K's last row is (0, 0, 1): z = c_z + t
    return ids, depth, np.array(n_alone), np.array(n_in)


@pytest.fixture(scope='module')
def references(frames):
    P = _cfg().calib()['P2']
    return [reference_render(f.scene, P, W, H) for f in frames[:5]]


def _labels(root, idx):
    with open(osp.join(root, 'training', 'label_2', f'{idx:06d}.txt')) as f:
        return [line.split() for line in f if line.strip()]


def _match(frame, line):
    """The scene object of a label line (by its exact 3D label)."""
    loc = np.array([float(v) for v in line[11:14]])
    for a in frame.annotations:
        if a.name == line[0] and np.allclose(a.loc, loc, atol=1e-6):
            return a
    raise AssertionError(f'no object for {line}')


# ---------------------------------------------------------------------------------------
# layout, formats, calibration
# ---------------------------------------------------------------------------------------
def test_layout_and_formats(world):
    root, summary = world
    assert summary['written'] == NUM_TRAIN + NUM_VAL
    with open(osp.join(root, 'ImageSets', 'train.txt')) as f:
        assert f.read().split() == [f'{i:06d}' for i in range(NUM_TRAIN)]
    with open(osp.join(root, 'ImageSets', 'val.txt')) as f:
        assert f.read().split() == [f'{i:06d}' for i in range(NUM_TRAIN, NUM_TRAIN + NUM_VAL)]
    for i in range(NUM_TRAIN + NUM_VAL):
        img = cv2.imread(osp.join(root, 'training', 'image_2', f'{i:06d}.png'),
                         cv2.IMREAD_UNCHANGED)
        assert img.shape == (H, W, 3) and img.dtype == np.uint8
        dep = cv2.imread(osp.join(root, 'training', 'depth_2', f'{i:06d}.png'),
                         cv2.IMREAD_UNCHANGED)
        assert dep.shape == (H, W) and dep.dtype == np.uint16
        for line in _labels(root, i):
            assert len(line) == 15
            if line[0] == 'DontCare':
                assert line[1:4] == ['-1', '-1', '-10'] and line[8:] == [
                    '-1', '-1', '-1', '-1000', '-1000', '-1000', '-10']
            else:
                assert line[0] in CLASS_SIZE_PRIORS
    assert not [p for p in os.listdir(osp.join(root, 'training', 'image_2'))
                if p.endswith('.tmp')]


def test_calib_is_kitti_scaled(world):
    root, _ = world
    calib = kitti_io.read_calib(osp.join(root, 'training', 'calib', '000000.txt'))
    sx, sy = W / 1242, H / 375
    np.testing.assert_allclose(calib['P2'][0, :4], KITTI_P2[0] * sx, rtol=1e-9)
    np.testing.assert_allclose(calib['P2'][1, :4], KITTI_P2[1] * sy, rtol=1e-9)
    np.testing.assert_allclose(calib['P2'][2, :4], KITTI_P2[2], rtol=1e-9)
    assert calib['P2'][0, 3] == pytest.approx(44.85728 * sx)
    assert set(kitti_format.CALIB_KEYS) <= set(calib)
    full = WorldConfig().calib()['P2']
    assert full[0, 0] == 721.5377 and full[2, 3] == 0.002745884


def test_png_round_trip():
    rng = np.random.default_rng(0)
    for img in (rng.integers(0, 256, (7, 9, 3), dtype=np.uint8),
                rng.integers(0, 256, (5, 4), dtype=np.uint8),
                rng.integers(0, 65536, (6, 11), dtype=np.uint16)):
        back = cv2.imdecode(np.frombuffer(kitti_format.png_bytes(img), np.uint8),
                            cv2.IMREAD_UNCHANGED)
        if img.ndim == 3:
            back = back[..., ::-1]
        assert back.dtype == img.dtype and np.array_equal(back, img)


# ---------------------------------------------------------------------------------------
# the world: parts inside their label box, class sizes
# ---------------------------------------------------------------------------------------
def test_parts_are_convex_and_inside_label_box():
    cfg = _cfg()
    seen = set()
    for s in range(12):
        scene = sample_scene(cfg, np.random.default_rng(s))
        for obj in scene.objects:
            l, h, w = obj.dims
            for part in obj.parts:
                v = part.verts
                if obj.name is not None:
                    assert (np.abs(v[:, 0]) <= l / 2 + 1e-9).all()
                    assert (np.abs(v[:, 2]) <= w / 2 + 1e-9).all()
                    assert (v[:, 1] <= 1e-9).all() and (v[:, 1] >= -h - 1e-9).all()
                # every vertex satisfies every plane; every plane touches >= 3 vertices
                s_ = v @ part.planes[:, :3].T - part.planes[:, 3]
                assert (s_ <= 1e-9).all()
                assert ((np.abs(s_) < 1e-9).sum(0) >= 3).all()
            if obj.name is not None:
                seen.add(obj.name)
                assert len(obj.parts) >= {'Car': 2, 'Pedestrian': 3, 'Cyclist': 5}[obj.name]
                assert obj.loc[1] == scene.camera_height
                assert 4.0 <= obj.loc[2] <= 60.0 + 3.0
    assert seen == {'Car', 'Pedestrian', 'Cyclist'}


# ---------------------------------------------------------------------------------------
# labels against the rendering
# ---------------------------------------------------------------------------------------
def test_renderer_matches_reference_ray_caster(frames, references):
    for f, (ids, depth, n_alone, n_in) in zip(frames, references):
        agree = (f.render.ids == ids).mean()
        assert agree > 0.9995, agree
        same = (f.render.ids == ids) & (ids >= 0) & (depth < 79.9)   # depth_2 stops at 80 m
        np.testing.assert_allclose(f.render.depth[same], depth[same], atol=1e-3)
        close = np.abs(f.render.n_alone - n_alone) <= 2
        assert close.all() and (np.abs(f.render.n_alone_in - n_in) <= 2).all()


def test_2d_boxes_are_the_visible_pixels(world, frames, references):
    root, _ = world
    n_checked = 0
    for i, f in enumerate(frames):
        for line in _labels(root, i):
            bbox = np.array([float(v) for v in line[4:8]])
            if line[0] == 'DontCare':
                continue
            ann = _match(f, line)
            ys, xs = np.nonzero(f.render.ids == ann.obj)
            # the renderer's own pixels: the box is exactly their extent
            assert np.array_equal(bbox, [xs.min(), ys.min(), xs.max(), ys.max()])
            if i < len(references):   # ... and those pixels are the reference's
                ys, xs = np.nonzero(references[i][0] == ann.obj)
                assert np.abs(bbox - [xs.min(), ys.min(), xs.max(), ys.max()]).max() <= 1
            assert bbox[3] - bbox[1] >= 15
            n_checked += 1
    assert n_checked >= 20


def test_truncation_and_occlusion_flags(world, frames, references):
    root, _ = world
    cfg = _cfg()
    t0, t1 = cfg.occlusion_visible_frac
    checked_trunc = checked_occ = 0
    for i, (ids, _, n_alone, n_in) in enumerate(references):
        for line in _labels(root, i):
            if line[0] == 'DontCare':
                continue
            ann = _match(frames[i], line)
            o = ann.obj
            # tolerances: 2-decimal labels, and a pixel or two on exact ties at part edges
            trunc = 1 - n_in[o] / n_alone[o]
            assert float(line[1]) == pytest.approx(trunc, abs=0.005 + 3 / n_alone[o])
            checked_trunc += trunc > 0
            frac = (ids == o).sum() / n_in[o]
            level = 0 if frac >= t0 else (1 if frac >= t1 else 2)
            if min(abs(frac - t0), abs(frac - t1)) > 3 / n_in[o]:
                assert int(line[2]) == level, (line, frac)
            checked_occ += level > 0
            assert frac >= cfg.min_visible_frac - 1e-3
    assert checked_trunc >= 1 and checked_occ >= 1


def test_projected_3d_box_contains_visible_2d_box(world):
    import torch

    from mmdet3d.structures import CameraInstance3DBoxes, points_cam2img
    root, _ = world
    n = 0
    for split in ('train', 'val'):
        with open(osp.join(root, f'kitti_infos_{split}.pkl'), 'rb') as f:
            infos = pickle.load(f)
        for info in infos['data_list']:
            P2 = torch.tensor(info['images']['CAM2']['cam2img'], dtype=torch.float32)
            for inst in info['instances']:
                if inst['bbox_label'] < 0:
                    continue
                box = CameraInstance3DBoxes(torch.tensor([inst['bbox_3d']]))
                uv = points_cam2img(box.corners[0], P2)   # float32: 1e-2 px tolerance
                x1, y1, x2, y2 = inst['bbox']
                assert uv[:, 0].min() <= x1 + 1e-2 and uv[:, 1].min() <= y1 + 1e-2
                assert uv[:, 0].max() >= x2 - 1e-2 and uv[:, 1].max() >= y2 - 1e-2
                n += 1
    assert n >= 20


def test_exact_depth_is_the_surface_distance(exact_world, frames, references):
    for i in range(3):
        raw = cv2.imread(osp.join(exact_world, 'training', 'depth_2', f'{i:06d}.png'),
                         cv2.IMREAD_UNCHANGED)
        d = decode_depth_png(raw)
        ids, ref_depth, _, _ = references[i]
        obj = (ids >= 0) & (frames[i].render.ids == ids) & (ref_depth <= 80)
        assert obj.sum() > 500
        assert np.abs(d[obj] - ref_depth[obj]).max() <= 0.5 / 256 + 1e-4
        # ground pixels: the plane y = camera height, z from the ray
        P = _cfg().calib()['P2']
        kinv = np.linalg.inv(P[:, :3])
        c = -kinv @ P[:, 3]
        vs, us = np.mgrid[0:H, 0:W]
        dirs = np.stack([us, vs, np.ones_like(us)], -1) @ kinv.T
        with np.errstate(divide='ignore', invalid='ignore'):
            t = (frames[i].scene.camera_height - c[1]) / dirs[..., 1]
        zg = c[2] + t * dirs[..., 2]
        ground = (ids < 0) & (dirs[..., 1] > 0) & (zg < 80)
        assert np.abs(d[ground] - zg[ground]).max() <= 0.5 / 256 + 1e-4
        # sky and far background are invalid
        assert (d[(ids < 0) & (dirs[..., 1] <= 0)] == 0).all()
        # same scenes as the noisy world: identical images
        img = cv2.imread(osp.join(exact_world, 'training', 'image_2', f'{i:06d}.png'))
        assert np.array_equal(img[..., ::-1], frames[i].render.image)


# ---------------------------------------------------------------------------------------
# depth noise model
# ---------------------------------------------------------------------------------------
def test_noisy_depth_follows_the_model(world, exact_world):
    root, _ = world
    cfg = DepthNoiseConfig()
    resid, z_all = [], []
    for i in range(3):
        noisy = decode_depth_png(cv2.imread(
            osp.join(root, 'training', 'depth_2', f'{i:06d}.png'), cv2.IMREAD_UNCHANGED))
        exact = decode_depth_png(cv2.imread(
            osp.join(exact_world, 'training', 'depth_2', f'{i:06d}.png'), cv2.IMREAD_UNCHANGED))
        with open(osp.join(root, 'training', 'synth_meta', f'{i:06d}.json')) as f:
            s = json.load(f)['depth_scale']
        # the sky stays invalid
        assert (noisy[exact == 0] == 0).all()
        from mmdet3d_skd.offline.synthetic.depth_noise import depth_edges
        flat = (exact > 2) & (noisy > 0) & ~depth_edges(exact, cfg.edge_jump, cfg.edge_width + 1)
        ratio = noisy[flat] / exact[flat]
        assert np.median(ratio) == pytest.approx(s, abs=0.02)
        resid.append(ratio / s - 1)
        z_all.append(exact[flat])
    resid, z_all = np.concatenate(resid), np.concatenate(z_all)
    stds = []
    for lo, hi in ((3, 12), (25, 60)):
        m = (z_all >= lo) & (z_all < hi)
        model = np.mean(cfg.rel_std_base + cfg.rel_std_per_m * z_all[m])
        stds.append(resid[m].std())
        assert 0.5 * model < resid[m].std() < 1.6 * model, (lo, hi, resid[m].std(), model)
    assert stds[1] > stds[0]


def test_edge_smoothing_and_exact_option():
    depth = np.full((40, 60), 10.0, np.float32)
    depth[:, 30:] = 30.0
    depth[:5] = 0.0   # sky
    cfg = DepthNoiseConfig(rel_std_base=0.0, rel_std_per_m=0.0)
    noisy, aux = apply_depth_noise(depth, cfg, 1.0, np.random.default_rng(0))
    assert (noisy[:5] == 0).all()
    band = noisy[10:, 28:32]
    assert ((band > 10.01) & (band < 29.99)).all()       # blended across the edge
    assert np.allclose(noisy[10:, :20], 10.0) and np.allclose(noisy[10:, 40:], 30.0)
    scaled, _ = apply_depth_noise(depth, cfg, 1.1, np.random.default_rng(0))
    assert np.allclose(scaled[10:, :20], 11.0)
    exact, _ = apply_depth_noise(depth, DepthNoiseConfig(exact=True), 1.3,
                                 np.random.default_rng(0))
    assert np.array_equal(exact, depth)


# ---------------------------------------------------------------------------------------
# mmdet3d info files, dataset and metric
# ---------------------------------------------------------------------------------------
def test_info_files_mirror_mmdet3d(world):
    root, _ = world
    with open(osp.join(root, 'kitti_infos_train.pkl'), 'rb') as f:
        infos = pickle.load(f)
    assert infos['metainfo']['categories'] == {
        'Pedestrian': 0, 'Cyclist': 1, 'Car': 2, 'Van': 3, 'Truck': 4, 'Person_sitting': 5,
        'Tram': 6, 'Misc': 7, 'DontCare': -1}
    assert infos['metainfo']['dataset'] == 'kitti'
    assert infos['metainfo']['info_version'] == '1.1'
    info = infos['data_list'][0]
    assert info['sample_idx'] == 0
    cam2 = info['images']['CAM2']
    assert cam2['img_path'] == '000000.png' and cam2['depth_path'] == '000000.png'
    assert (cam2['height'], cam2['width']) == (H, W)
    assert np.asarray(cam2['cam2img']).shape == (4, 4)
    assert 'CAM2' in info['cam_instances']
    for inst in info['instances']:
        if inst['bbox_label'] < 0:
            assert inst['bbox_3d'][:3] == [-1000, -1000, -1000] and inst['index'] == -1
        else:
            assert inst['num_lidar_pts'] > 0
    if osp.isfile(REAL_INFO):
        with open(REAL_INFO, 'rb') as f:
            real = pickle.load(f)
        rinfo = real['data_list'][0]
        assert set(rinfo) <= set(info) | {'plane'}
        assert set(rinfo['images']) == set(info['images'])
        assert set(rinfo['images']['CAM2']) <= set(cam2)
        assert set(rinfo['lidar_points']) == set(info['lidar_points'])
        assert set(rinfo['instances'][0]) == set(info['instances'][0])
    for inst in info['cam_instances']['CAM2']:
        assert {'bbox', 'bbox_label', 'bbox_3d', 'bbox_label_3d', 'center_2d',
                'depth'} <= set(inst)


def test_difficulty_mirrors_kitti():
    annos = dict(bbox=np.array([[0, 0, 10, 50], [0, 0, 10, 30], [0, 0, 10, 30],
                                [0, 0, 10, 20], [0, 0, 10, 50]], float),
                 occluded=np.array([0, 1, 2, 0, 0]),
                 truncated=np.array([0.0, 0.2, 0.4, 0.0, 0.6]))
    assert kitti_io.add_difficulty(annos).tolist() == [0, 1, 2, -1, -1]


def test_kitti_dataset_loads_the_infos(world):
    from mmdet3d.datasets import KittiDataset
    from mmdet3d.utils import register_all_modules
    register_all_modules()
    root, _ = world
    pipeline = [
        dict(type='LoadImageFromFileMono3D'),
        dict(type='LoadAnnotations3D', with_bbox=True, with_label=True, with_bbox_3d=True,
             with_label_3d=True, with_bbox_depth=True),
        dict(type='Pack3DDetInputs',
             keys=['img', 'gt_bboxes', 'gt_bboxes_labels', 'gt_bboxes_3d', 'gt_labels_3d',
                   'centers_2d', 'depths']),
    ]
    for load_type in ('frame_based', 'fov_image_based'):
        ds = KittiDataset(data_root=root, ann_file='kitti_infos_train.pkl',
                          data_prefix=dict(img='training/image_2'), pipeline=pipeline,
                          modality=dict(use_lidar=False, use_camera=True),
                          load_type=load_type, box_type_3d='Camera',
                          metainfo=dict(classes=['Pedestrian', 'Cyclist', 'Car']),
                          test_mode=False, filter_empty_gt=False)
        assert len(ds) == NUM_TRAIN
        item = ds[0]
        assert tuple(item['inputs']['img'].shape) == (3, H, W)
        gt = item['data_samples'].gt_instances_3d
        n_labels = sum(1 for line in _labels(root, 0) if line[0] != 'DontCare')
        if load_type == 'frame_based':
            assert len(gt.bboxes_3d) == n_labels
            labels = [line for line in _labels(root, 0) if line[0] != 'DontCare']
            np.testing.assert_allclose(
                item['data_samples'].gt_instances.bboxes.numpy(),
                [[float(v) for v in line[4:8]] for line in labels], atol=1e-4)
        assert set(gt.labels_3d.tolist()) <= {0, 1, 2}


METRIC_SCRIPT = textwrap.dedent('''
    import json, pickle, sys
    import numpy as np, torch
    from mmdet3d.evaluation.metrics import KittiMetric
    from mmdet3d.structures import CameraInstance3DBoxes
    ann = sys.argv[1]
    infos = pickle.load(open(ann, 'rb'))['data_list']
    metric = KittiMetric(ann_file=ann, metric='bbox')
    metric.dataset_meta = dict(classes=['Pedestrian', 'Cyclist', 'Car'])
    rng = np.random.default_rng(0)
    samples = []
    for pos, info in enumerate(infos):
        inst = [i for i in info['instances'] if i['bbox_label'] in (0, 1, 2)]
        boxes = np.array([i['bbox_3d'] for i in inst], np.float32).reshape(-1, 7)
        boxes[:, :3] += rng.uniform(-0.01, 0.01, (len(boxes), 3))
        boxes[:, 6] += rng.uniform(-0.01, 0.01, len(boxes))
        p3d = dict(bboxes_3d=CameraInstance3DBoxes(torch.from_numpy(boxes)),
                   # distinct scores: KITTI's AP needs a ranking (ties collapse the curve)
                   scores_3d=torch.from_numpy(rng.uniform(0.5, 1.0, len(boxes))).float(),
                   labels_3d=torch.tensor([i['bbox_label'] for i in inst], dtype=torch.long))
        samples.append(dict(pred_instances_3d=p3d, pred_instances=dict(), sample_idx=pos))
    metric.process({}, samples)
    res = metric.compute_metrics(metric.results)
    print('RESULT' + json.dumps(res))
''')


def test_kitti_metric_scores_jittered_ground_truth(tmp_path_factory):
    """mmdet3d's KittiMetric (numba CUDA kernels, run in the CUDA simulator) on predictions
    that are 1 cm / 0.01 rad jitters of the val ground truth.

    KITTI's AP40 samples 40 recall points from the ranked true positives, so it can only
    reach ``(n_gt - 1) / 40`` with fewer than 41 ground-truth boxes: this val set has 16
    full-resolution frames, more than 41 moderate cars.
    """
    root = str(tmp_path_factory.mktemp('synth_metric'))
    gen.generate(root, 0, 16, seed=11, progress=False)
    with open(osp.join(root, 'kitti_infos_val.pkl'), 'rb') as f:
        infos = pickle.load(f)['data_list']
    n_moderate = sum(1 for info in infos for i in info['instances']
                     if i['bbox_label'] == 2 and i['difficulty'] in (0, 1))
    assert n_moderate > 41
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM='1')
    out = subprocess.run([sys.executable, '-c', METRIC_SCRIPT,
                          osp.join(root, 'kitti_infos_val.pkl')],
                         capture_output=True, text=True, env=env, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.split('RESULT')[-1].strip().splitlines()[0])
    for key in ('Car_3D_AP40_moderate_strict', 'Car_BEV_AP40_moderate_strict',
                'Car_3D_AP40_hard_strict', 'Car_3D_AP11_moderate_strict'):
        assert res[f'pred_instances_3d/KITTI/{key}'] > 95, (key, res)


# ---------------------------------------------------------------------------------------
# determinism, resume, refusal, CLI
# ---------------------------------------------------------------------------------------
def test_deterministic_and_resumable(tmp_path):
    root = str(tmp_path / 'w')
    kw = dict(seed=3, width=160, height=48, progress=False)
    gen.generate(root, 3, 1, **kw)
    img = osp.join(root, 'training', 'image_2', '000002.png')
    before = open(img, 'rb').read()
    os.unlink(img)
    os.unlink(osp.join(root, 'kitti_infos_val.pkl'))
    # a stray temporary file from an interrupted run is removed
    stray = osp.join(root, 'training', 'image_2', '.000001.png.x.tmp')
    open(stray, 'wb').close()
    s = gen.generate(root, 3, 1, **kw)
    assert not osp.exists(stray)
    assert (s['written'], s['skipped']) == (1, 3)
    assert open(img, 'rb').read() == before
    assert osp.isfile(osp.join(root, 'kitti_infos_val.pkl'))
    with pytest.raises(gen.WorldMismatchError, match='seed'):
        gen.generate(root, 3, 1, **dict(kw, seed=4))
    s = gen.generate(root, 3, 1, overwrite=True, **dict(kw, seed=4))
    assert s['written'] == 4 and open(img, 'rb').read() != before


def test_refuses_foreign_folder_and_cli(tmp_path, capsys):
    import importlib.util
    root = tmp_path / 'kitti'
    (root / 'training' / 'image_2').mkdir(parents=True)
    with pytest.raises(gen.WorldMismatchError, match='not a synthetic world'):
        gen.generate(str(root), 1, 0, width=64, height=32, progress=False)
    spec = importlib.util.spec_from_file_location(
        'generate_synthetic', osp.join(osp.dirname(__file__), '..', 'tools',
                                       'generate_synthetic.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = str(tmp_path / 'cli')
    args = ['--out', out, '--num-train', '2', '--num-val', '1', '--width', '96', '--height',
            '32', '--no-progress']
    assert tool.main(args) == 0
    assert len(os.listdir(osp.join(out, 'training', 'label_2'))) == 3
    assert '3 frames written' in capsys.readouterr().out
    assert tool.main(args) == 0
    assert '0 frames written, 3 already there' in capsys.readouterr().out
    assert tool.main(args + ['--seed', '5']) == 2
    assert 'different synthetic world' in capsys.readouterr().err
