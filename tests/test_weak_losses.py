import math

import pytest
import torch

from mmdet3d_skd.models.pseudo_points import PseudoPoints
from mmdet3d_skd.models.weak_losses import (WeakMono3DLoss, bev_alignment_loss,
                                            dimension_prior_loss, inverse_density_weights,
                                            laplacian_depth_loss, orientation_loss,
                                            points_orientation, projected_box2d,
                                            projection_consistency_loss)

K = torch.tensor([[700.0, 0.0, 600.0, 40.0], [0.0, 700.0, 180.0, 0.2], [0.0, 0.0, 1.0, 0.003],
                  [0.0, 0.0, 0.0, 1.0]])


def to_cam(xl, zl, center, yaw):
    """Box-frame BEV (x_l, z_l) -> camera (x, y, z): (l/2, 0) maps to (l/2 cos, -l/2 sin)."""
    c, s = math.cos(yaw), math.sin(yaw)
    x = center[0] + xl * c + zl * s
    z = center[2] - xl * s + zl * c
    return torch.stack([x, torch.full_like(x, center[1]), z], dim=-1)


def visible_face_points(center, dims, yaw, n=20):
    """Points on the BEV faces whose outer side faces the camera (independent of the loss)."""
    l, w = dims[0], dims[2]
    t = torch.linspace(-0.5, 0.5, n)
    faces = [(torch.full_like(t, l / 2), t * w, (1.0, 0.0)), (torch.full_like(t, -l / 2), t * w,
                                                              (-1.0, 0.0)),
             (t * l, torch.full_like(t, w / 2), (0.0, 1.0)), (t * l, torch.full_like(t, -w / 2),
                                                              (0.0, -1.0))]
    out = []
    c, s = math.cos(yaw), math.sin(yaw)
    for xl, zl, (nx, nz) in faces:
        p = to_cam(xl, zl, center, yaw)
        # outward normal in the camera frame; visible if the camera is on its outer side
        ncam = torch.tensor([nx * c + nz * s, -nx * s + nz * c])
        mid = p[n // 2, [0, 2]]
        if float((-mid) @ ncam) > 0:
            out.append(p)
    return torch.cat(out)


CENTER = (2.0, 0.9, 20.0)
DIMS = (3.9, 1.55, 1.6)
YAW = 0.4


def fitting_case(n=20):
    pts = visible_face_points(CENTER, DIMS, YAW, n)
    mask = torch.ones(1, pts.shape[0], dtype=torch.bool)
    return pts[None], mask


def align(center, dims=DIMS, yaw=YAW, **kw):
    pts, mask = fitting_case()
    return bev_alignment_loss(torch.tensor([center]), torch.tensor([dims]), torch.tensor([yaw]),
                              pts, mask, **kw)


def test_laplacian_by_hand():
    z = torch.tensor([10.0, 10.0, 5.0])
    s = torch.tensor([0.0, math.log(2.0), -1.0])
    t = torch.tensor([12.0, 12.0, 5.0])
    out = laplacian_depth_loss(z, s, t)
    assert torch.allclose(out, torch.tensor([2.0, 1.0 + math.log(2.0), -1.0]))


def test_alignment_zero_when_fitting_and_grows():
    pts, mask = fitting_case()
    assert pts.shape[1] == 40  # two faces visible
    assert align(CENTER).item() == pytest.approx(0.0, abs=1e-5)
    shifts = [align((CENTER[0] + d, CENTER[1], CENTER[2])).item() for d in (0.2, 0.5, 1.0)]
    assert 0 < shifts[0] < shifts[1] < shifts[2]
    deeper = [align((CENTER[0], CENTER[1], CENTER[2] + d)).item() for d in (0.3, 0.8)]
    assert 0 < deeper[0] < deeper[1]
    nearer = align((CENTER[0], CENTER[1], CENTER[2] - 1.0)).item()
    assert nearer > 0
    rot = [align(CENTER, yaw=YAW + d).item() for d in (0.1, 0.3)]
    assert 0 < rot[0] < rot[1]
    # each term alone is zero at the fit
    for kw in (dict(ray_weight=0, behind_weight=0), dict(ray_weight=1, behind_weight=0)):
        assert align(CENTER, **kw).item() == pytest.approx(0.0, abs=1e-5)
    # the behind term: a box in front of its surface
    b = align((CENTER[0], CENTER[1], CENTER[2] - 4.0), ray_weight=0, behind_weight=1).item()
    e = align((CENTER[0], CENTER[1], CENTER[2] - 4.0), ray_weight=0, behind_weight=0).item()
    assert b > e


def test_alignment_gradients_finite_nonzero():
    pts, mask = fitting_case()
    center = torch.tensor([[CENTER[0] + 0.3, CENTER[1], CENTER[2] + 0.5]], requires_grad=True)
    dims = torch.tensor([DIMS], requires_grad=True)
    yaw = torch.tensor([YAW + 0.2], requires_grad=True)
    loss = bev_alignment_loss(center, dims, yaw, pts, mask)
    loss.sum().backward()
    for g in (center.grad, dims.grad, yaw.grad):
        assert torch.isfinite(g).all()
    assert center.grad[0, [0, 2]].abs().sum() > 0 and yaw.grad.abs().sum() > 0
    assert dims.grad[0, [0, 2]].abs().sum() > 0
    # a descent step reduces the loss
    with torch.no_grad():
        c2 = center - 0.05 * center.grad
        y2 = yaw - 0.05 * yaw.grad
    assert bev_alignment_loss(c2, dims, y2, pts, mask).item() < loss.item()


def test_alignment_degenerate_is_finite():
    pts, mask = fitting_case()
    n = 3
    P = pts.shape[1]
    pts3 = torch.cat([pts, torch.zeros(2, P, 3)])
    mask3 = torch.cat([mask, torch.zeros(2, P, dtype=torch.bool)])
    center = torch.tensor([list(CENTER), [0.0, 0.0, 0.0], [1.0, 1.0, 10.0]], requires_grad=True)
    dims = torch.zeros(n, 3, requires_grad=True)  # zero-size boxes
    yaw = torch.zeros(n, requires_grad=True)
    loss = bev_alignment_loss(center, dims, yaw, pts3, mask3)
    assert torch.isfinite(loss).all()
    assert loss[1:].abs().sum() == 0  # no points -> no loss
    loss.sum().backward()
    for g in (center.grad, dims.grad, yaw.grad):
        assert torch.isfinite(g).all()


def test_inverse_density_weights():
    # 3 clustered points and 1 lone point: the lone one weighs as much as the cluster
    pts = torch.tensor([[[0.0, 0, 10], [0.1, 0, 10], [0.0, 0, 10.1], [3.0, 0, 10]]])
    w = inverse_density_weights(pts, torch.ones(1, 4, dtype=torch.bool), radius=0.5)
    assert torch.allclose(w, torch.tensor([[1 / 6, 1 / 6, 1 / 6, 1 / 2]]))


def test_projection_zero_for_consistent_box_and_grows():
    from mmdet3d.structures import CameraInstance3DBoxes, points_cam2img
    center = torch.tensor([[2.0, 0.9, 20.0], [-4.0, 1.0, 12.0]])
    dims = torch.tensor([[3.9, 1.55, 1.6], [0.8, 1.7, 0.6]])
    yaw = torch.tensor([0.4, -1.2])
    bottom = center + torch.stack([torch.zeros(2), dims[:, 1] / 2, torch.zeros(2)], -1)
    corners = CameraInstance3DBoxes(torch.cat([bottom, dims, yaw[:, None]], 1)).corners
    uv = points_cam2img(corners.reshape(-1, 3), K).reshape(2, 8, 2)
    gt = torch.cat([uv.min(1).values, uv.max(1).values], -1)
    assert torch.allclose(projected_box2d(center, dims, yaw, K.expand(2, 4, 4)), gt, atol=1e-3)
    loss = projection_consistency_loss(center, dims, yaw, K.expand(2, 4, 4), gt)
    assert torch.allclose(loss, torch.zeros(2), atol=1e-4)
    moved = projection_consistency_loss(center + torch.tensor([0.5, 0.0, 0.0]), dims, yaw,
                                        K.expand(2, 4, 4), gt)
    far = projection_consistency_loss(center + torch.tensor([0.0, 0.0, 5.0]), dims, yaw,
                                      K.expand(2, 4, 4), gt)
    assert (moved > 0.05).all() and (far > 0.05).all()
    # hand check of the formula: GT twice as wide (2w), same centre -> L1 = 2 * (w/2) / (2w) =
    # 0.5, log(1 + 0.5); IoU = 0.5 and the enclosing box is the GT -> 1 - GIoU = 0.5
    rect = projected_box2d(center, dims, yaw, K.expand(2, 4, 4))
    gt2 = rect.clone()
    w = rect[:, 2] - rect[:, 0]
    gt2[:, 0] -= w / 2
    gt2[:, 2] += w / 2
    l2 = projection_consistency_loss(center, dims, yaw, K.expand(2, 4, 4), gt2)
    assert torch.allclose(l2, torch.full((2,), math.log(1.5) + 0.5), atol=1e-3)
    # a box 100 box-widths off costs log(1 + 200) + 2 at most, not 200: a few such boxes
    # cannot swamp a batch
    gt3 = rect.clone()
    gt3[:, [0, 2]] -= 100 * w[:, None]
    l3 = projection_consistency_loss(center, dims, yaw, K.expand(2, 4, 4), gt3)
    assert (l3 < math.log(201.0) + 2.0 + 1e-3).all() and (l3 > math.log(201.0)).all()


def test_projection_clips_to_image_and_handles_behind_camera():
    center = torch.tensor([[0.0, 1.0, 0.5], [0.0, 1.0, -5.0], [30.0, 1.0, 10.0]],
                          requires_grad=True)
    dims = torch.tensor([[3.9, 1.5, 1.6], [0.0, 0.0, 0.0], [3.9, 1.5, 1.6]], requires_grad=True)
    yaw = torch.zeros(3, requires_grad=True)
    gt = torch.tensor([[0.0, 0.0, 1200.0, 370.0], [10.0, 10.0, 10.0, 10.0],
                       [1000.0, 100.0, 1242.0, 300.0]])
    loss = projection_consistency_loss(center, dims, yaw, K, gt, img_shape=(375, 1242))
    assert torch.isfinite(loss).all()
    loss.sum().backward()
    for g in (center.grad, dims.grad, yaw.grad):
        assert torch.isfinite(g).all()
    rect = projected_box2d(center, dims, yaw, K, img_shape=(375, 1242))
    assert (rect[:, [0, 2]] >= 0).all() and (rect[:, [0, 2]] <= 1242).all()
    assert (rect[:, [1, 3]] >= 0).all() and (rect[:, [1, 3]] <= 375).all()


def test_dimension_prior():
    dims = torch.tensor([[3.9, 1.5, 1.6], [7.8, 0.75, 1.6], [0.0, 1.0, 1.0]], requires_grad=True)
    prior = torch.tensor([[3.9, 1.5, 1.6]]).expand(3, 3)
    out = dimension_prior_loss(dims, prior)
    assert out[0].item() == pytest.approx(0.0, abs=1e-6)
    assert out[1].item() == pytest.approx(2 * math.log(2.0), abs=1e-5)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(dims.grad).all()


def l_shape(yaw, center=(3.0, 1.0, 25.0), length=4.0, w=1.8, n=30):
    t = torch.linspace(-0.5, 0.5, n)
    a = to_cam(torch.full_like(t, -length / 2), t * w, center, yaw)  # one end face
    b = to_cam(t * length, torch.full_like(t, -w / 2), center, yaw)  # one long side
    return torch.cat([a, b])


def test_orientation_from_l_shape_modulo_half_pi():
    yaws = [0.3, 1.2, -0.7, 2.5]
    pts = torch.stack([l_shape(y) for y in yaws])
    mask = torch.ones(pts.shape[:2], dtype=torch.bool)
    yaw_obs, conf = points_orientation(pts, mask)
    for y, yo in zip(yaws, yaw_obs.tolist()):
        d = (yo - y + math.pi / 4) % (math.pi / 2) - math.pi / 4
        assert abs(d) < math.radians(1.5)
        assert -math.pi / 4 <= yo < math.pi / 4
    assert (conf > 0.3).all()
    # too few points -> no confidence
    m2 = mask.clone()
    m2[:, 3:] = False
    _, conf2 = points_orientation(pts, m2)
    assert (conf2 == 0).all()


def test_orientation_loss():
    conf = torch.tensor([1.0, 1.0, 0.5, 0.0])
    pred = torch.tensor([0.3, 0.3 + math.pi / 2, 0.3 + math.pi / 4, 1.0], requires_grad=True)
    obs = torch.full((4,), 0.3)
    out = orientation_loss(pred, obs, conf, period=math.pi / 2)
    assert torch.allclose(out, torch.tensor([0.0, 0.0, 1.0, 0.0]), atol=1e-6)
    out_pi = orientation_loss(pred, obs, conf, period=math.pi)
    assert out_pi[1].item() == pytest.approx(2.0, abs=1e-6)
    out.sum().backward()
    assert torch.isfinite(pred.grad).all()


def make_pseudo(n, p=8, valid=None):
    valid = torch.zeros(n, dtype=torch.bool) if valid is None else valid
    return PseudoPoints(
        points=torch.zeros(n, p, 3), mask=valid[:, None].expand(n, p).clone(), valid=valid,
        num_valid=valid.long() * p, surface_depth=torch.zeros(n),
        depth_target=torch.full((n,), float('nan')), extent=torch.zeros(n),
        yaw_obs=torch.full((n,), float('nan')), yaw_conf=torch.zeros(n),
        ground_plane=torch.tensor([[0.0, -1.0, 0.0, 1.65]]).expand(n, 4))


def make_pred(n):
    return dict(center=torch.tensor([[1.0, 1.0, 15.0]]).repeat(n, 1).requires_grad_(),
                dims=torch.tensor([[3.9, 1.5, 1.6]]).repeat(n, 1).requires_grad_(),
                yaw=torch.zeros(n, requires_grad=True),
                depth=torch.full((n,), 15.0, requires_grad=True),
                depth_logvar=torch.zeros(n, requires_grad=True))


@pytest.mark.parametrize('n', [0, 2])
def test_weak_loss_module_without_valid_instances(n):
    loss_fn = WeakMono3DLoss()
    pred = make_pred(n)
    boxes = torch.tensor([[500.0, 150.0, 700.0, 230.0]]).repeat(n, 1)
    out = loss_fn(pred, make_pseudo(n), boxes, K.expand(n, 4, 4), torch.tensor(
        [[3.9, 1.5, 1.6]]).repeat(n, 1))
    assert set(out) == {'loss_depth', 'loss_align', 'loss_proj', 'loss_dim', 'loss_orient'}
    for k in ('loss_depth', 'loss_align', 'loss_orient'):
        assert out[k].item() == 0.0 and out[k].requires_grad
    if n == 0:
        assert out['loss_proj'].item() == 0.0 and out['loss_dim'].item() == 0.0
    else:
        assert out['loss_proj'].item() > 0  # projection needs no depth points
    total = sum(out.values())
    total.backward()
    for v in pred.values():
        assert v.grad is not None and torch.isfinite(v.grad).all()


def test_weak_loss_module_mixed_batch_and_registry():
    from mmdet3d.registry import MODELS
    loss_fn = MODELS.build(dict(type='WeakMono3DLoss', loss_weights=dict(dim=0.5)))
    assert loss_fn.loss_weights['dim'] == 0.5 and loss_fn.loss_weights['depth'] == 1.0
    assert loss_fn.loss_weights['align'] == 0.1  # the documented default (loss balance)
    with pytest.raises(ValueError, match='unknown loss_weights'):
        WeakMono3DLoss(loss_weights=dict(depht=1.0))
    pts, mask = fitting_case()
    p = pts.shape[1]
    pseudo = make_pseudo(2, p, valid=torch.tensor([True, False]))
    pseudo.points = torch.cat([pts, torch.zeros(1, p, 3)])
    pseudo.depth_target = torch.tensor([20.0, float('nan')])
    pseudo.yaw_obs = torch.tensor([YAW, float('nan')])
    pseudo.yaw_conf = torch.tensor([0.8, 0.0])
    pred = dict(center=torch.tensor([list(CENTER), [0.0, 1.0, 8.0]], requires_grad=True),
                dims=torch.tensor([DIMS, DIMS], requires_grad=True),
                yaw=torch.tensor([YAW, 0.0], requires_grad=True),
                depth=torch.tensor([22.0, 8.0], requires_grad=True),
                depth_logvar=torch.tensor([0.0, 0.0], requires_grad=True))
    boxes = projected_box2d(pred['center'], pred['dims'], pred['yaw'], K).detach()
    out = loss_fn(pred, pseudo, boxes, K.expand(2, 4, 4), torch.tensor([DIMS, DIMS]))
    assert out['loss_depth'].item() == pytest.approx(2.0)  # only the valid one: |22-20|
    assert out['loss_align'].item() == pytest.approx(0.0, abs=1e-4)
    assert out['loss_proj'].item() == pytest.approx(0.0, abs=1e-3)
    assert out['loss_dim'].item() == pytest.approx(0.0, abs=1e-6)
    assert out['loss_orient'].item() == pytest.approx(0.0, abs=1e-6)
    sum(out.values()).backward()
    for v in pred.values():
        assert torch.isfinite(v.grad).all()
    assert pred['depth'].grad[0] != 0 and pred['depth'].grad[1] == 0


def test_alignment_per_depth_is_scale_free():
    """The same misfit with the whole scene (points, box, depth) twice as far and twice as
    big: the metre loss doubles, the per-depth loss stays (uniform point weights: the
    inverse-density radius is in metres, so it is kept out of the comparison)."""
    pts, mask = fitting_case()
    off = torch.tensor([[0.5, 0.0, 0.3]])
    out = {}
    for per_depth in (False, True):
        loss_fn = WeakMono3DLoss(loss_weights=dict(align=1.0), align_per_depth=per_depth,
                                 align_cfg=dict(density_radius=1e-6))
        for k in (1.0, 2.0):
            pseudo = make_pseudo(1, pts.shape[1], valid=torch.tensor([True]))
            pseudo.points = pts * k
            pseudo.depth_target = torch.tensor([CENTER[2] * k])
            pred = dict(center=(torch.tensor([list(CENTER)]) + off) * k,
                        dims=torch.tensor([DIMS]) * k, yaw=torch.tensor([YAW]),
                        depth=torch.tensor([CENTER[2] * k]), depth_logvar=torch.zeros(1))
            boxes = torch.tensor([[500.0, 150.0, 700.0, 230.0]])
            out[per_depth, k] = loss_fn(pred, pseudo, boxes, K.expand(1, 4, 4),
                                        torch.tensor([DIMS]))['loss_align'].item()
    assert out[False, 1.0] > 0.1
    assert out[False, 2.0] == pytest.approx(2 * out[False, 1.0], rel=1e-4)
    assert out[True, 2.0] == pytest.approx(out[True, 1.0], rel=1e-4)
    assert out[True, 1.0] == pytest.approx(out[False, 1.0] / CENTER[2], rel=1e-4)


def test_orientation_l1_pulls_off_the_wrong_axis():
    """On the wrong axis (90 degrees off, period pi) the cosine term is at its maximum with
    zero gradient; the L1 on the wrapped angle still pulls with slope 1. Heading flips
    (pi apart) cost nothing in either."""
    obs, conf = torch.tensor([math.pi / 2]), torch.ones(1)
    for kind, grad in (('cos', 0.0), ('l1', 1.0)):
        pred = torch.tensor([1e-4], requires_grad=True)
        loss = orientation_loss(pred, obs, conf, period=math.pi, kind=kind)
        loss.sum().backward()
        assert abs(pred.grad.item()) == pytest.approx(grad, abs=1e-3)
    out = orientation_loss(torch.tensor([0.0, math.pi + 0.3, -0.2]),
                           torch.tensor([math.pi / 2 - 0.1, 0.0, 0.0]),
                           torch.tensor([1.0, 1.0, 0.5]), period=math.pi, kind='l1')
    assert out.tolist() == pytest.approx([math.pi / 2 - 0.1, 0.3, 0.1], abs=1e-6)
    with pytest.raises(ValueError, match="kind must be 'cos' or 'l1'"):
        orientation_loss(obs, obs, conf, kind='l2')
    with pytest.raises(ValueError, match='orient_kind'):
        WeakMono3DLoss(orient_kind='sq')
