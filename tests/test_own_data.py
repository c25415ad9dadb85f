"""Your own images, end to end: the synthetic world's 2D boxes and P2 exported as a COCO json
-> tools/convert_coco.py's converter -> weak training with configs/skd_wm3d_custom.py -> the
metric of data without 3D labels -> tools/predict.py on held-out images; the same losses as
the KITTI-layout path; the metric against the 3D truth; the real KITTI frames through
convert -> predict."""
import importlib.util
import json
import pickle
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.runner import Runner
from mmengine.structures import InstanceData

from mmdet3d_skd.datasets.coco_convert import convert, kitti_info_to_coco
from mmdet3d_skd.datasets.kitti_format import read_label
from tests.conftest import REPO, small_synth_cfg
from tests.test_weak_means_weak import train_cfg_logged

CLASSES = ['Pedestrian', 'Cyclist', 'Car']  # the synth config's order
ITERS = 3


def _tool(name):
    spec = importlib.util.spec_from_file_location(f'skd_{name}', REPO / 'tools' / f'{name}.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope='module')
def coco_world(synth_data, tmp_path_factory):
    """The synthetic set as a user's data: COCO jsons of its 2D boxes and P2, converted."""
    out = tmp_path_factory.mktemp('coco_world')
    for split in ('train', 'val'):
        kitti_info_to_coco(str(synth_data / f'kitti_infos_{split}.pkl'),
                           str(out / f'{split}.json'))
    convert({'train': str(out / 'train.json'), 'val': str(out / 'val.json')},
            str(synth_data / 'training' / 'image_2'), str(out / 'converted'))
    return out


def custom_cfg(synth_data, coco_world, work_dir, max_iters=ITERS):
    """configs/skd_wm3d_custom.py on the converted synthetic set, sized as the tests'."""
    cfg = small_synth_cfg(synth_data, work_dir, max_iters=max_iters, batch_size=2,
                          config='configs/skd_wm3d_custom.py')
    conv = str(coco_world / 'converted') + '/'
    depth = str(synth_data / 'training' / 'depth_2') + '/'
    prior = pickle.load(open(conv + 'mono3d_infos_train.pkl', 'rb'))['metainfo']['dims_prior']
    for head in ('bbox_head', 'teacher_head'):
        cfg.model[head].update(num_classes=3, dims_prior=prior)
    cfg.model.test_cfg.topk = 10  # an untrained model's 100 boxes an image: slow to score
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        ds = cfg[name].dataset
        ds.data_root = conv
        ds.data_prefix = dict(img=str(synth_data / 'training' / 'image_2'))
        ds.metainfo = dict(classes=CLASSES)
        for t in ds.pipeline:
            if t['type'] == 'LoadDepthMap':
                t['depth_prefix'] = depth
    # (a) and (b); (c), the KITTI metric, is checked on the 3D truth below (numba compiles
    # its kernels on first use: tens of seconds)
    evaluator = dict(type='WeakMono3DMetric', ann_file=conv + 'mono3d_infos_val.pkl',
                     depth_prefix=depth, depth_score_thr=0.0)
    cfg.val_evaluator = cfg.test_evaluator = evaluator
    return cfg


def train(cfg, work_dir):
    """Train ``cfg`` under seed 0 without validation; the logged values per iteration (clocks
    dropped) and the final weights."""
    cfg.randomness = dict(seed=0)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    cfg.visualizer.name = cfg.experiment_name = f'own_{uuid.uuid4().hex[:8]}'
    return train_cfg_logged(cfg, work_dir)


@pytest.fixture(scope='module')
def converted_run(synth_data, coco_world, tmp_path_factory):
    work = tmp_path_factory.mktemp('own_run')
    rows, weights = train(custom_cfg(synth_data, coco_world, work), work)
    return work, rows, weights


def test_converted_infos_give_the_losses_of_the_kitti_layout_path(synth_data, converted_run,
                                                                  tmp_path):
    _, rows, weights = converted_run
    kitti_rows, kitti_weights = train(small_synth_cfg(synth_data, tmp_path, max_iters=ITERS,
                                                      batch_size=2), tmp_path)
    assert [r['iter'] for r in rows] == list(range(1, ITERS + 1))
    assert 'student.loss_depth' in rows[0] and 'teacher.loss_align' in rows[0]
    for a, b in zip(rows, kitti_rows):
        assert a == b, {k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)}
    for k, v in weights.items():
        assert torch.equal(v, kitti_weights[k]), k


def test_end_to_end_evaluation_and_prediction_on_held_out_images(synth_data, coco_world,
                                                                 converted_run, tmp_path):
    work, _, _ = converted_run
    ckpt = work / f'iter_{ITERS}.pth'
    assert ckpt.exists()
    cfg = custom_cfg(synth_data, coco_world, tmp_path / 'test')
    cfg.load_from = str(ckpt)
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    cfg.visualizer.name = cfg.experiment_name = f'own_test_{uuid.uuid4().hex[:8]}'
    metrics = Runner.from_cfg(cfg).test()
    for key in ('proj2d/AP50', 'proj2d/AP70'):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics['depth/num_dets'] > 0  # depth_score_thr 0: every detection is scored
    assert metrics['depth/num_valid'] <= metrics['depth/num_dets']
    if metrics['depth/num_valid']:
        assert np.isfinite(metrics['depth/median_rel_err'])
    assert not any(k.startswith('Kitti metric') for k in metrics)  # no 3D labels given

    # prediction on the held-out (val) images, intrinsics from their calib files
    images = tmp_path / 'held_out'
    images.mkdir()
    val = pickle.load(open(synth_data / 'kitti_infos_val.pkl', 'rb'))['data_list'][:3]
    names = [Path(i['images']['CAM2']['img_path']).stem for i in val]
    for n in names:
        (images / f'{n}.png').symlink_to(synth_data / 'training' / 'image_2' / f'{n}.png')
    out = tmp_path / 'pred'
    cfg_file = tmp_path / 'cfg.py'
    cfg.dump(str(cfg_file))
    records = _tool('predict').main([
        '--images', str(images), '--calib-dir', str(synth_data / 'training' / 'calib'),
        '--config', str(cfg_file), '--checkpoint', str(ckpt), '--out-dir', str(out),
        '--score-thr', '0.0', '--no-progress'])
    assert [Path(r['image']).stem for r in records] == names
    saved = json.loads((out / 'predictions.json').read_text())
    assert saved['classes'] == CLASSES and len(saved['images']) == 3
    for n, rec in zip(names, saved['images']):
        rows = read_label(str(out / 'labels' / f'{n}.txt'))
        with_box = [d for d in rec['detections'] if d['bbox'] is not None]
        assert len(rows) == len(with_box)
        for row, d in zip(rows, with_box):
            assert row['type'] == d['class'] and row['score'] == pytest.approx(d['score'], 1e-3)
            np.testing.assert_allclose(row['location'], d['location'], atol=1e-3)
            np.testing.assert_allclose(row['dimensions'], np.array(d['dimensions'])[[1, 2, 0]],
                                       atol=1e-3)  # h w l in the file
        pic = out / 'pictures' / f'{n}.png'
        import mmcv
        assert mmcv.imread(str(pic)).shape == (188, 621 + 188, 3)  # image + square BEV


def _truth_results(infos, shift=0.01, scale=1.0):
    """The val split's 3D truth as predictions (shifted 1 cm: the KITTI rotated IoU of two
    identical boxes is a degenerate case of its kernel), centre distances times ``scale``."""
    from mmdet3d.structures import CameraInstance3DBoxes
    cats = {v: k for k, v in infos['metainfo']['categories'].items()}
    out = []
    for i, info in enumerate(infos['data_list']):
        inst = [x for x in info['instances'] if cats.get(x['bbox_label']) in CLASSES]
        b = torch.tensor([x['bbox_3d'] for x in inst], dtype=torch.float32).reshape(-1, 7)
        b[:, :3] *= scale
        b[:, 0] += shift
        pred = InstanceData(bboxes_3d=CameraInstance3DBoxes(b),
                            scores_3d=torch.full((len(b), ), 0.9),
                            labels_3d=torch.tensor([CLASSES.index(cats[x['bbox_label']])
                                                    for x in inst], dtype=torch.long))
        out.append(dict(sample_idx=i, img_path=info['images']['CAM2']['img_path'],
                        pred_instances_3d=dict(pred.items()), pred_instances={}))
    return out


def test_metric_on_the_3d_truth_and_on_boxes_too_far(synth_data, coco_world):
    """(a) and (b) without 3D labels, (c) with them: the truth projects onto its 2D labels,
    agrees with the depth map, and scores KITTI AP; boxes 30 % too far do not."""
    from mmdet3d_skd.evaluation import WeakMono3DMetric
    infos = pickle.load(open(synth_data / 'kitti_infos_val.pkl', 'rb'))

    def run(results, **kw):
        m = WeakMono3DMetric(
            ann_file=str(coco_world / 'converted' / 'mono3d_infos_val.pkl'),
            depth_prefix=str(synth_data / 'training' / 'depth_2'),
            kitti_ann_file=str(synth_data / 'kitti_infos_val.pkl'), **kw)
        m.dataset_meta = dict(classes=CLASSES)
        return m.compute_metrics(results)
    truth, far = run(_truth_results(infos)), run(_truth_results(infos, scale=1.3))
    car3d = 'Kitti metric/pred_instances_3d/KITTI/Car_3D_AP40_moderate_strict'
    assert truth['proj2d/Car_AP50'] > 0.9
    assert truth['depth/median_rel_err'] < 0.1 and truth['depth/num_valid'] > 10
    assert truth[car3d] > 0
    assert far['proj2d/Car_AP70'] < 0.5 * truth['proj2d/Car_AP70']
    assert 0.2 < far['depth/median_rel_err'] < 0.4
    assert far[car3d] == 0
    # results that are not the ann_file's images in its order are refused
    with pytest.raises(ValueError, match='the val dataloader must run over that file'):
        run(_truth_results(infos)[1:])
    with pytest.raises(ValueError, match="unknown metric"):
        WeakMono3DMetric(ann_file='x.pkl', metric='map')


def test_real_kitti_frames_convert_and_predict(kitti_real, converted_run, synth_data,
                                               coco_world, tmp_path):
    """The three real frames as a user's COCO json (000007 with its cam_intrinsic from
    mmdet3d's own mono3d json, whose 3D keys are ignored; 000000 and 000008 with theirs from
    their info files) -> converter -> predict with a checkpoint trained on synthetic data."""
    from mmdet3d_skd.datasets.kitti_format import read_intrinsics
    shipped = json.loads((kitti_real / 'tests' / 'kitti_infos_mono3d.coco.json').read_text())
    img7 = dict(shipped['images'][0], file_name='tests/' + shipped['images'][0]['file_name'])
    anns = [dict(a, id=n + 1) for n, a in enumerate(shipped['annotations'])]
    images, cats = [img7], {c['id']: c['name'] for c in shipped['categories']}
    for iid, pkl, img, calib in ((0, 'tests/kitti_infos_train.pkl',
                                  'tests/training/image_2/000000.png', None),
                                 (8, 'demo/000008.pkl', 'demo/000008.png', 'demo/000008.txt')):
        info = pickle.load(open(kitti_real / pkl, 'rb'))['data_list'][0]
        P = (read_intrinsics(str(kitti_real / calib)) if calib else
             np.array(info['images']['CAM2']['cam2img']))
        images.append(dict(id=iid, file_name=img, cam_intrinsic=P.tolist()))
        for inst in info['instances']:
            if inst['bbox_label'] in cats:
                x1, y1, x2, y2 = inst['bbox']
                anns.append(dict(id=len(anns) + 1, image_id=iid, category_id=inst['bbox_label'],
                                 bbox=[x1, y1, x2 - x1, y2 - y1]))
    coco = dict(images=images, annotations=anns, categories=shipped['categories'])
    (tmp_path / 'real.json').write_text(json.dumps(coco))
    res = convert({'val': str(tmp_path / 'real.json')}, str(kitti_real), str(tmp_path / 'conv'))
    assert res['val']['images'] == 3 and res['val']['instances'] >= 8

    work, _, _ = converted_run
    cfg = custom_cfg(synth_data, coco_world, tmp_path / 'cfg')
    cfg.dump(str(tmp_path / 'cfg.py'))
    out = tmp_path / 'pred'
    records = _tool('predict').main([
        '--info', str(tmp_path / 'conv' / 'mono3d_infos_val.pkl'), '--image-root',
        str(kitti_real), '--config', str(tmp_path / 'cfg.py'), '--checkpoint',
        str(work / f'iter_{ITERS}.pth'), '--out-dir', str(out), '--score-thr', '0.05',
        '--no-progress'])
    assert [(r['width'], r['height']) for r in records] == [(1242, 375), (1224, 370),
                                                            (1242, 375)]
    for stem in ('tests/training/image_2/000007', 'tests/training/image_2/000000',
                 'demo/000008'):
        read_label(str(out / 'labels' / f'{stem}.txt'))  # parses (may be empty)
        assert (out / 'pictures' / f'{stem}.png').exists()
    # a folder of images with one intrinsics file for all
    out2 = tmp_path / 'pred2'
    _tool('predict').main([
        '--images', str(kitti_real / 'demo'), '--intrinsics',
        str(kitti_real / 'demo' / '000008.txt'), '--config', str(tmp_path / 'cfg.py'),
        '--checkpoint', str(work / f'iter_{ITERS}.pth'), '--out-dir', str(out2),
        '--no-pictures', '--no-progress'])
    assert (out2 / 'labels' / '000008.txt').exists() and not (out2 / 'pictures').exists()
