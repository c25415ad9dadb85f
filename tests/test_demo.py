"""tools/demo.py, SKDLocalVisualizer, mmdet3d's MonoDet3DInferencer with our model, and the
validation pictures + TensorBoard of a tiny run (a real 2-iteration checkpoint, generated
data)."""
import glob
import importlib.util
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData

from mmdet3d.structures import CameraInstance3DBoxes, Det3DDataSample
from mmdet3d_skd.visualization import SKDLocalVisualizer, camera_meta_for_image
from tests.conftest import KITTI_REAL, small_synth_cfg

DEMO = KITTI_REAL / 'demo'
VAL_W, VAL_H = 621, 188  # synth_data frames


def _tool():
    spec = importlib.util.spec_from_file_location(
        'skd_demo_tool', osp.join(osp.dirname(__file__), '..', 'tools', 'demo.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope='module')
def trained(synth_data, tmp_path_factory):
    """2 training iterations, then validation (batch 1) with the visualization hook drawing
    every 3rd sample through SKDLocalVisualizer and TensorBoard on (the config's backends)."""
    from mmengine.runner import Runner
    work = tmp_path_factory.mktemp('demo_run')
    cfg = small_synth_cfg(synth_data, work, max_iters=2)
    cfg.val_dataloader.batch_size = 1
    cfg.default_hooks.visualization = dict(type='Det3DVisualizationHook', draw=True,
                                           interval=3)
    cfg.visualizer.type = 'SKDLocalVisualizer'
    cfg.randomness = dict(seed=0)
    assert any(b['type'] == 'TensorboardVisBackend' for b in cfg.visualizer.vis_backends)
    cfg.dump(str(work / 'cfg.py'))
    Runner.from_cfg(cfg).train()
    assert (work / 'iter_2.pth').exists()
    return work


# ----------------------------------------------------------------------- the visualizer
P = np.array([[200.0, 0, 150, 10], [0, 200, 50, 0.5], [0, 0, 1, 0.01]])
A = np.diag([0.5, 0.5, 1.0])  # the network input is the image at half size


def _sample(boxes, labels, scores, meta):
    ds = Det3DDataSample(metainfo=meta)
    inst = InstanceData()
    inst.bboxes_3d = CameraInstance3DBoxes(torch.tensor(boxes, dtype=torch.float32))
    inst.labels_3d = torch.tensor(labels)
    inst.scores_3d = torch.tensor(scores)
    ds.pred_instances_3d = inst
    return ds


def _drawn_extent(out, img):
    diff = np.abs(out.astype(int) - img.astype(int)).sum(-1) > 60
    ys, xs = np.nonzero(diff)
    return xs.min(), ys.min(), xs.max(), ys.max()


def test_boxes_are_drawn_with_the_original_images_matrix(tmp_path):
    """The sample's cam2img is the half-size input's; drawn on the full image, the box must
    land where the original matrix projects it (ori_cam2img), not at half the coordinates."""
    img = np.full((100, 300, 3), 40, np.uint8)
    box = [0.0, 1.0, 10.0, 2.0, 1.5, 1.0, 0.0]  # x y z (bottom centre) l h w ry
    meta = dict(cam2img=(A @ P).tolist(), ori_cam2img=P.tolist(), ori_shape=(100, 300),
                img_shape=(50, 150))
    vis = SKDLocalVisualizer(name='t_proj', bev=False, draw_labels=False)
    vis.dataset_meta = dict(classes=['Pedestrian', 'Cyclist', 'Car'])
    out_file = str(tmp_path / 'p.png')
    vis.add_datasample('p', dict(img=img), _sample([box], [2], [0.9], meta), draw_gt=False,
                       out_file=out_file, pred_score_thr=0.3)
    out = mmcv.imread(out_file, channel_order='rgb')
    assert out.shape == img.shape
    corners = CameraInstance3DBoxes(torch.tensor([box])).corners[0].numpy()
    uvw = corners @ P[:, :3].T + P[:, 3]
    uv = uvw[:, :2] / uvw[:, 2:]
    x1, y1, x2, y2 = _drawn_extent(out, img)
    # mmdet3d's projection draws at (uv - 1); lines are ~1-2 px wide
    np.testing.assert_allclose([x1, y1, x2, y2],
                               [uv[:, 0].min() - 1, uv[:, 1].min() - 1, uv[:, 0].max() - 1,
                                uv[:, 1].max() - 1], atol=3)
    # the metainfo for an image of the input's size keeps cam2img
    m = camera_meta_for_image(meta, (50, 150))
    np.testing.assert_allclose(m['cam2img'][:3], A @ P)
    np.testing.assert_allclose(camera_meta_for_image(meta, (100, 300))['cam2img'][:3], P)


def test_no_detection_gives_the_plain_image_and_an_empty_bev(tmp_path):
    img = (np.random.default_rng(0).random((60, 200, 3)) * 255).astype(np.uint8)
    meta = dict(cam2img=P.tolist(), ori_shape=(60, 200), img_shape=(60, 200))
    vis = SKDLocalVisualizer(name='t_empty', bev=True)
    out_file = str(tmp_path / 'e.png')
    vis.add_datasample('e', dict(img=img), _sample([[0, 1, 10, 4, 1.5, 1.6, 0]], [2], [0.1],
                                                   meta),
                       draw_gt=False, out_file=out_file, pred_score_thr=0.3)
    out = mmcv.imread(out_file, channel_order='rgb')
    assert out.shape == (60, 260, 3)
    assert np.abs(out[:, :200].astype(int) - img).mean() < 2


def test_bev_places_a_box_at_its_x_and_z(tmp_path):
    """Square panel, camera at the bottom centre, bev_range metres up: with 200 px for 60 m
    (3.33 px/m) a box at x=+10, z=30 is centred at column 100 + 33.3 and row 100."""
    vis = SKDLocalVisualizer(name='t_bev', bev_range=60.0)
    vis.dataset_meta = dict(classes=['Car'])
    inst = InstanceData()
    inst.bboxes_3d = CameraInstance3DBoxes(torch.tensor([[10.0, 1.0, 30.0, 4.0, 1.5, 2.0,
                                                          0.3]]))
    inst.labels_3d = torch.tensor([0])
    empty = vis.draw_bev_view(inst[torch.zeros(0, dtype=torch.long)], 200)
    bev = vis.draw_bev_view(inst, 200)
    ys, xs = np.nonzero(np.abs(bev.astype(int) - empty.astype(int)).sum(-1) > 60)
    assert abs((xs.min() + xs.max()) / 2 - 133.3) < 2 and abs((ys.min() + ys.max()) / 2 - 100) < 2
    # a 4 m x 2 m box at yaw 0.3: BEV extent 4 cos .3 + 2 sin .3 = 4.4 m = 14.7 px
    assert abs((xs.max() - xs.min()) - 14.7) < 3


# ----------------------------------------------------------------------- demo and inferencer
def test_demo_on_a_generated_image(trained, synth_data, tmp_path):
    img = sorted(glob.glob(str(synth_data / 'training' / 'image_2' / '*.png')))[0]
    calib = img.replace('image_2', 'calib').replace('.png', '.txt')
    out = tmp_path / 'demo.png'
    result = _tool().main([img, '--calib', calib, '--config', str(trained / 'cfg.py'),
                           '--checkpoint', str(trained / 'iter_2.pth'), '--out', str(out),
                           '--score-thr', '0.0'])
    pic = mmcv.imread(str(out))
    assert pic.shape == (VAL_H, VAL_W + VAL_H, 3)
    assert len(result.pred_instances_3d) > 0
    assert isinstance(result.pred_instances_3d.bboxes_3d, CameraInstance3DBoxes)


def _real(name):
    if not (DEMO / name).exists():
        pytest.skip(f'real KITTI frame {DEMO / name} not found (../shared/data/kitti-real)')
    return str(DEMO / name)


def test_demo_on_the_real_kitti_frame(trained, tmp_path):
    img, calib = _real('000008.png'), _real('000008.txt')  # 1242x375, 4x4 cam2img
    out = tmp_path / 'kitti.png'
    _tool().main([img, '--calib', calib, '--config', str(trained / 'cfg.py'), '--checkpoint',
                  str(trained / 'iter_2.pth'), '--out', str(out), '--bev-range', '50'])
    assert mmcv.imread(str(out)).shape == (375, 1242 + 375, 3)
    out2 = tmp_path / 'kitti_nobev.png'
    _tool().main([img, '--calib', calib, '--config', str(trained / 'cfg.py'), '--checkpoint',
                  str(trained / 'iter_2.pth'), '--out', str(out2), '--no-bev'])
    assert mmcv.imread(str(out2)).shape == (375, 1242, 3)


def test_demo_errors(trained, tmp_path):
    tool = _tool()
    args = ['--config', str(trained / 'cfg.py'), '--checkpoint', str(trained / 'iter_2.pth'),
            '--out', str(tmp_path / 'x.png')]
    with pytest.raises(SystemExit, match='image .*nope.png not found'):
        tool.main([str(tmp_path / 'nope.png'), '--calib', str(tmp_path / 'c.txt'), *args])
    bad = tmp_path / 'c.txt'
    bad.write_text('1 2 3 4 5')
    img = tmp_path / 'i.png'
    mmcv.imwrite(np.zeros((20, 30, 3), np.uint8), str(img))
    with pytest.raises(SystemExit, match='c.txt: 5 numbers'):
        tool.main([str(img), '--calib', str(bad), *args])


def test_mmdet3d_mono_inferencer_with_our_model(trained, tmp_path):
    """mmdet3d's MonoDet3DInferencer (what demo/mono_det_demo.py runs) with our config and
    checkpoint: an info file gives cam2img; SKDLocalVisualizer draws the picture."""
    from mmengine.config import Config

    from mmdet3d.apis import MonoDet3DInferencer
    img, infos = _real('000008.png'), _real('000008.pkl')
    cfg = Config.fromfile(str(trained / 'cfg.py'))
    assert cfg.visualizer.type == 'SKDLocalVisualizer'
    inferencer = MonoDet3DInferencer(model=cfg, weights=str(trained / 'iter_2.pth'),
                                     device='cpu')
    res = inferencer(dict(img=img, infos=infos), out_dir=str(tmp_path / 'inf'),
                     pred_score_thr=0.0)
    assert len(res['predictions'][0]['bboxes_3d']) > 0
    pic = tmp_path / 'inf' / 'vis_camera' / 'CAM2' / '000008.png'
    assert mmcv.imread(str(pic)).shape == (375, 1242 + 375, 3)
    assert (tmp_path / 'inf' / 'preds' / '000008.json').exists()


# ----------------------------------------------------------------------- validation pictures
def test_validation_pictures_and_tensorboard(trained):
    """Det3DVisualizationHook(draw=True, interval=3) over 8 validation samples after iteration
    2 draws samples 1, 4, 7 (step = iteration + index); TensorBoard gets the losses, the GTM
    coefficients and the pictures."""
    pics = sorted(glob.glob(str(trained / '*' / 'vis_data' / 'vis_image' / '*.png')))
    names = [osp.basename(p) for p in pics]
    assert names == ['val sample_3.png', 'val sample_6.png', 'val sample_9.png']
    for p in pics:
        assert mmcv.imread(p).shape == (VAL_H, VAL_W + VAL_H, 3)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = glob.glob(str(trained / '*' / 'vis_data' / 'events.out.tfevents.*'))
    assert len(events) == 1
    acc = EventAccumulator(events[0], size_guidance={'images': 0, 'scalars': 0})
    acc.Reload()
    scalars = set(acc.Tags()['scalars'])
    assert {'loss', 'student.loss_depth', 'teacher.loss_align', 'distill.loss_feature',
            'k_teacher', 'k_student', 'k_distill', 'rho'} <= scalars
    assert len(acc.Scalars('k_teacher')) == 2  # logged every iteration (logger interval 1)
    assert acc.Tags()['images'] == ['val sample']
