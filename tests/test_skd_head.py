"""SKDHead: targets, decoding (back-projection, yaw), losses and inference, by hand."""
import math

import pytest
import torch
from mmengine.structures import InstanceData

from mmdet3d.structures import CameraInstance3DBoxes, Det3DDataSample
from mmdet3d_skd.models.geometry import project_points
from mmdet3d_skd.models.skd_head import SKDHead

K = [[721.5, 0., 609.6, 44.9], [0., 721.5, 172.9, 0.22], [0., 0., 1., 0.0027],
     [0., 0., 0., 1.]]


def make_head(**kw):
    torch.manual_seed(0)
    return SKDHead(num_classes=3, in_channels=8, feat_channels=8, **kw)


def sample(boxes, labels, boxes3d=None, centers=None, depths=None):
    s = Det3DDataSample(metainfo=dict(cam2img=K, img_path='x.png'))
    gt = InstanceData()
    gt.bboxes = torch.tensor(boxes, dtype=torch.float32)
    gt.labels = torch.tensor(labels)
    s.gt_instances = gt
    gt3d = InstanceData()
    if boxes3d is not None:
        gt3d.bboxes_3d = CameraInstance3DBoxes(torch.tensor(boxes3d))
        gt3d.labels_3d = torch.tensor(labels)
        gt3d.centers_2d = torch.tensor(centers)
        gt3d.depths = torch.tensor(depths)
    s.gt_instances_3d = gt3d
    return s


def test_targets_heatmap_peak_at_the_box_centre_cell():
    head = make_head()
    t = head.get_targets([sample([[40., 20., 80., 60.]], [2])], (25, 50), (100, 200), 'cpu')
    assert t.stride == 4.0
    assert t.cells.tolist() == [[15, 10]]  # centre (60, 40) / 4
    assert t.heatmap[0, 2, 10, 15] == 1.0 and t.heatmap[0, :2].sum() == 0
    assert t.boxes2d.tolist() == [[40., 20., 80., 60.]]


def test_labels_outside_the_classes_are_a_clear_error():
    head = make_head()
    with pytest.raises(ValueError, match='outside 0..2'):
        head.get_targets([sample([[0., 0., 8., 8.]], [5])], (4, 4), (16, 16), 'cpu')


def test_decode_back_projects_the_offset_centre_at_the_depth():
    head = make_head(depth_mode='direct')
    cells = torch.tensor([[10, 5]])
    raw = dict(bbox2d=torch.tensor([[1., 2., 3., 4.]]), offset=torch.tensor([[0.5, -1.0]]),
               depth=torch.tensor([[math.log(20.0)]]), depth_logvar=torch.tensor([[0.3]]),
               dims=torch.tensor([[0.1, 0.0, -0.1]]), orient=torch.tensor([[1.0, 0.0]]))
    k = torch.tensor(K)[None]
    dec = head.decode(raw, cells, torch.tensor([2]), k, stride=4.0)
    p = torch.tensor([42.0, 22.0])  # (cell + 0.5) * stride
    assert torch.allclose(dec['box2d'], torch.tensor([[38., 14., 54., 38.]]))
    assert torch.allclose(dec['uv'], (p + torch.tensor([0.5, -1.0]) * 4)[None])
    assert dec['depth'].item() == pytest.approx(20.0, rel=1e-5)
    assert dec['center'][0, 2].item() == pytest.approx(20.0, rel=1e-5)
    uv, _ = project_points(dec['center'], k)
    assert torch.allclose(uv, dec['uv'], atol=1e-3)
    prior = torch.tensor([3.88, 1.53, 1.63])
    assert torch.allclose(dec['dims'][0], prior * torch.exp(torch.tensor([0.1, 0., -0.1])))
    assert dec['alpha'].item() == pytest.approx(math.pi / 2)
    x, z = dec['center'][0, 0].item(), dec['center'][0, 2].item()
    assert dec['yaw'].item() == pytest.approx(
        math.remainder(math.pi / 2 + math.atan2(x, z), 2 * math.pi), abs=1e-5)


def test_geometric_depth_is_the_pinhole_depth_of_the_prior_height():
    """depth_mode='geometric': z = f_y * H_prior / h_2d * exp(d); d = 0 gives the pinhole
    depth of a prior-height object whose predicted 2D box is h_2d pixels tall."""
    head = make_head(depth_mode='geometric')
    cells = torch.tensor([[10, 5], [10, 5]])
    # 2D boxes (l, t, r, b) in cells: heights (2 + 3) * 4 = 20 px and 10 * 4 = 40 px
    raw = dict(bbox2d=torch.tensor([[1., 2., 1., 3.], [1., 5., 1., 5.]]),
               offset=torch.zeros(2, 2), depth=torch.tensor([[0.0], [math.log(1.5)]]),
               depth_logvar=torch.zeros(2, 1), dims=torch.zeros(2, 3),
               orient=torch.tensor([[0.0, 1.0], [0.0, 1.0]]))
    k = torch.tensor(K)[None].expand(2, 4, 4)
    dec = head.decode(raw, cells, torch.tensor([2, 0]), k, stride=4.0)
    fy = K[1][1]
    assert dec['depth'][0].item() == pytest.approx(fy * 1.53 / 20.0, rel=1e-5)  # Car
    assert dec['depth'][1].item() == pytest.approx(fy * 1.76 / 40.0 * 1.5, rel=1e-5)  # Ped
    # the 2D box height is detached: depth gradients do not move the 2D box regression
    raw['bbox2d'].requires_grad_(True)
    raw['depth'].requires_grad_(True)
    dec = head.decode(raw, cells, torch.tensor([2, 0]), k, stride=4.0)
    dec['depth'].sum().backward()
    assert raw['bbox2d'].grad is None or raw['bbox2d'].grad.abs().sum() == 0
    assert raw['depth'].grad.abs().sum() > 0


def test_unknown_depth_mode_is_a_clear_error():
    with pytest.raises(ValueError, match='depth_mode'):
        make_head(depth_mode='lidar')


def test_full_supervision_losses_vanish_at_the_truth():
    """Predictions equal to the 3D labels give zero offset, dims and orientation losses."""
    head = make_head(supervision='full', depth_mode='direct')
    box3d = [[2.0, 1.5, 20.0, 3.9, 1.5, 1.6, 0.4]]  # bottom centre
    grav = torch.tensor([[2.0, 1.5 - 0.75, 20.0]])
    uv, _ = project_points(grav, torch.tensor(K)[None])
    s = sample([[500., 150., 560., 190.]], [2], box3d, uv.tolist(), [20.0])
    t = head.get_targets([s], (48, 160), (192, 640), 'cpu')
    p = (t.cells.float() + 0.5) * 4
    alpha = 0.4 - math.atan2(2.0, 20.0)
    preds = {k: torch.zeros(1, c, 48, 160) for k, c in
             [('heatmap', 3), ('bbox2d', 4), ('offset', 2), ('depth', 1),
              ('depth_logvar', 1), ('dims', 3), ('orient', 2)]}
    cx, cy = t.cells[0].tolist()
    preds['offset'][0, :, cy, cx] = ((uv[0] - p[0]) / 4)
    preds['depth'][0, 0, cy, cx] = math.log(20.0)
    prior = torch.tensor([3.88, 1.53, 1.63])
    preds['dims'][0, :, cy, cx] = torch.log(torch.tensor([3.9, 1.5, 1.6]) / prior)
    preds['orient'][0, :, cy, cx] = torch.tensor([math.sin(alpha), math.cos(alpha)])
    losses = head.loss_by_feat(preds, t)
    for name in ('loss_offset', 'loss_dims', 'loss_orient'):
        assert losses[name].item() == pytest.approx(0.0, abs=1e-4), name
    # Laplacian depth term at s = 0: |z - z*| + 0
    assert losses['loss_depth'].item() == pytest.approx(0.0, abs=1e-3)


def test_predict_returns_camera_boxes_at_the_peak():
    head = make_head(depth_mode='direct',
                     test_cfg=dict(topk=5, local_max_kernel=3, score_thr=0.3))
    preds = {k: torch.zeros(1, c, 24, 80) for k, c in
             [('bbox2d', 4), ('offset', 2), ('depth', 1), ('depth_logvar', 1), ('dims', 3),
              ('orient', 2)]}
    preds['heatmap'] = torch.full((1, 3, 24, 80), -10.0)
    preds['heatmap'][0, 2, 12, 40] = 5.0
    preds['depth'][0, 0, 12, 40] = math.log(15.0)
    preds['orient'][0, :, 12, 40] = torch.tensor([0.0, 1.0])
    s = Det3DDataSample(metainfo=dict(cam2img=K))
    res3d, res2d = head.predict_by_feat(preds, [s], (96, 320))
    boxes = res3d[0].bboxes_3d
    assert isinstance(boxes, CameraInstance3DBoxes) and len(boxes) == 1
    assert res3d[0].labels_3d.tolist() == [2]
    assert res3d[0].scores_3d[0].item() == pytest.approx(torch.sigmoid(torch.tensor(5.)).item())
    assert boxes.gravity_center[0, 2].item() == pytest.approx(15.0, rel=1e-4)
    assert torch.allclose(boxes.dims[0], torch.tensor([3.88, 1.53, 1.63]))
    # bottom centre is the gravity centre lowered by h / 2
    assert boxes.tensor[0, 1] - boxes.gravity_center[0, 1] == pytest.approx(1.53 / 2)
    assert len(res2d[0].bboxes) == 1


def test_weak_projection_is_clipped_to_the_network_input():
    """A truncated object's 2D label is clipped at the input's border (a crop or the image
    edge); the weak loss receives the input's (h, w) so that it clips the projected 3D box
    the same way."""
    head = make_head()
    t = head.get_targets([sample([[40., 20., 80., 60.]], [2])], (25, 50), (100, 200), 'cpu')
    from mmdet3d_skd.models.skd_head import input_hw
    assert input_hw(t) == (100.0, 200.0)
    seen = {}

    def spy(pred, pseudo, boxes2d, cam2img, prior, img_shape=None):
        seen['img_shape'] = img_shape
        return {}
    head.loss_weak3d.forward = spy
    preds = head(torch.randn(1, 8, 25, 50))
    head.loss_by_feat(preds, t, pseudo=object())
    assert seen['img_shape'] == (100.0, 200.0)


def test_camera_rays_are_two_more_trunk_inputs_and_change_the_regression():
    head = make_head(camera_rays=True)
    assert head.reg_trunk.conv.in_channels == 8 + 2
    feat = torch.randn(1, 8, 25, 50)
    cam2img = torch.tensor(K)[None]
    with pytest.raises(ValueError, match='needs cam2img and input_hw'):
        head(feat)
    out = head(feat, cam2img, (100, 200))
    assert out['depth'].shape == (1, 1, 25, 50)
    # another camera (principal point moved) changes the regression, not the heatmap
    other = cam2img.clone()
    other[0, 1, 2] += 50.0
    out2 = head(feat, other, (100, 200))
    assert torch.equal(out['heatmap'], out2['heatmap'])
    assert not torch.allclose(out['depth'], out2['depth'])


def test_map_depth_starts_from_the_depth_map_at_the_cell():
    """depth_mode='map' (the teacher): z = D_cell * exp(d), D_cell the mean of the cell's
    valid depth pixels; a cell without valid depth falls back to the geometric depth."""
    head = make_head(depth_mode='map')
    depth = torch.zeros(1, 1, 16, 32)
    depth[0, 0, 4:8, 8:12] = 18.0  # the 4x4 pixels of feature cell (x=2, y=1)
    depth[0, 0, 4, 8] = 22.0  # mean of the 16 pixels: 18.25
    preds = head(torch.randn(1, 8, 4, 8), depth=depth)
    assert preds['depth_ref'].shape == (1, 1, 4, 8)
    cells = torch.tensor([[2, 1], [5, 2]])
    raw = SKDHead.gather(preds, torch.zeros(2, dtype=torch.long), cells)
    raw['bbox2d'] = torch.tensor([[1., 2., 1., 3.], [1., 2., 1., 3.]])  # 2D box 20 px tall
    raw['depth'] = torch.tensor([[0.0], [0.0]])
    k = torch.tensor(K)[None].expand(2, 4, 4)
    dec = head.decode(raw, cells, torch.tensor([2, 2]), k, stride=4.0)
    assert dec['depth'][0].item() == pytest.approx(18.25, rel=1e-5)
    assert dec['depth'][1].item() == pytest.approx(K[1][1] * 1.53 / 20.0, rel=1e-5)
    raw['depth'] = torch.tensor([[math.log(1.1)], [0.0]])
    dec = head.decode(raw, cells, torch.tensor([2, 2]), k, stride=4.0)
    assert dec['depth'][0].item() == pytest.approx(18.25 * 1.1, rel=1e-5)
    with pytest.raises(ValueError, match="depth_mode='map'"):
        head(torch.randn(1, 8, 4, 8))
