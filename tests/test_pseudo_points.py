"""Pseudo-point extraction on a ray-cast scene: flat ground 1.65 m below the camera, one car-sized
box, a far wall. The renderer below is independent of the code under test (plain pinhole)."""
import math
from collections import namedtuple

import numpy as np
import pytest
import torch

from mmdet3d_skd.models.orientation_fit import prior_box_centre
from mmdet3d_skd.models.pseudo_points import (PseudoPoints, batch_pseudo_points,
                                              extract_pseudo_points, fit_ground_plane,
                                              masked_quantile, resolve_length_axis)

F, CX, CY, H, W = 360.0, 160.0, 60.0, 160, 320
K = torch.tensor([[F, 0, CX], [0, F, CY], [0, 0, 1.0]])
CAM_H, WALL = 1.65, 60.0
# the car: gravity centre, (l, h, w), yaw
CAR_C = np.array([1.0, CAM_H - 0.775, 15.0])
CAR_D = np.array([3.9, 1.55, 1.65])
CAR_RY = 0.5
# a nearer car crossing in front of its left part
OCC_C = np.array([-1.5, CAM_H - 0.775, 10.0])


def render(objects=((CAR_C, CAR_D, CAR_RY),)):
    """Depth map (z per pixel) and each object's visible-pixel mask, by ray casting."""
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    r = np.stack([(u - CX) / F, (v - CY) / F, np.ones_like(u)], axis=-1)  # X = z * r
    depth = np.full((H, W), WALL)
    with np.errstate(divide='ignore', invalid='ignore'):
        zg = CAM_H / r[..., 1]
    ground = (r[..., 1] > 0) & (zg < depth)
    depth[ground] = zg[ground]
    ids = np.full((H, W), -1)
    for k, (center, dims, ry) in enumerate(objects):
        # box: local = R^T (z r - c), slab over t = z
        c, s = math.cos(ry), math.sin(ry)

        def loc(vec):
            return np.stack([vec[..., 0] * c - vec[..., 2] * s, vec[..., 1],
                             vec[..., 0] * s + vec[..., 2] * c], axis=-1)
        dl, ol = loc(r), loc(-center[None, None])
        with np.errstate(divide='ignore', invalid='ignore'):
            t1 = (-dims / 2 - ol) / dl
            t2 = (dims / 2 - ol) / dl
        tin = np.nanmax(np.minimum(t1, t2), axis=-1)
        tout = np.nanmin(np.maximum(t1, t2), axis=-1)
        hit = (tin <= tout) & (tin > 0) & (tin < depth)
        depth[hit] = tin[hit]
        ids[hit] = k
    masks = [torch.from_numpy(ids == k) for k in range(len(objects))]
    return torch.from_numpy(depth).float(), masks[0] if len(masks) == 1 else masks


def car_box2d(car, margin=6):
    """The car's tight pixel rectangle grown by ``margin`` px (a loose label: it then holds wall
    pixels above and ground pixels around and below the car)."""
    rows, cols = torch.nonzero(car, as_tuple=True)
    tight = torch.tensor([[cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]]).float()
    return tight + torch.tensor([[-margin, -margin, margin, margin]])


def inside_car(points, margin=0.02):
    c, s = math.cos(CAR_RY), math.sin(CAR_RY)
    d = points.double() - torch.from_numpy(CAR_C)
    loc = torch.stack([d[..., 0] * c - d[..., 2] * s, d[..., 1], d[..., 0] * s + d[..., 2] * c], -1)
    return (loc.abs() <= torch.from_numpy(CAR_D / 2) + margin).all(-1)


@pytest.fixture(scope='module')
def scene():
    depth, car = render()
    return depth, car, car_box2d(car)


def test_ground_plane_is_found(scene):
    depth, _, box = scene
    plane, fitted = fit_ground_plane(depth, K, box)
    assert fitted
    assert torch.allclose(plane, torch.tensor([0.0, -1.0, 0.0, CAM_H]), atol=0.02)
    # no depth at all -> the flat prior
    plane0, fitted0 = fit_ground_plane(torch.zeros(H, W), K)
    assert not fitted0
    assert torch.equal(plane0, torch.tensor([0.0, -1.0, 0.0, 1.65]))


def test_object_surface_kept_ground_and_background_rejected(scene):
    depth, car, box = scene
    # the box holds ground and wall pixels too (the test is meaningful)
    x1, y1, x2, y2 = box[0].long().tolist()
    sub = depth[y1:y2, x1:x2]
    assert (sub == WALL).any() and (~car[y1:y2, x1:x2] & (sub < WALL)).any()
    pp = extract_pseudo_points(depth, K, box, dims_prior=torch.tensor(CAR_D).float(),
                               num_points=64)
    assert isinstance(pp, PseudoPoints) and len(pp) == 1
    assert pp.valid.tolist() == [True]
    assert pp.mask.sum().item() == 64 and pp.num_valid.item() >= 64
    pts = pp.points[0][pp.mask[0]]
    assert inside_car(pts).all(), 'ground or background points survived'
    # the kept points are the lower side faces: above the ground, below half the height
    height = CAM_H - pts[:, 1]
    assert (height >= 0.1 - 1e-4).all() and (height < 0.5 * CAR_D[1] + 1e-4).all()
    # surface depth = the car's nearest visible z; target near the true centre depth
    c, s = math.cos(CAR_RY), math.sin(CAR_RY)
    e_z = CAR_D[0] * s + CAR_D[2] * c
    assert pp.surface_depth.item() == pytest.approx(CAR_C[2] - e_z / 2, abs=0.25)
    assert pp.depth_target.item() == pytest.approx(CAR_C[2], abs=0.3)
    # orientation from the points' BEV L-shape: modulo pi, resolved with the prior
    assert pp.yaw_conf.item() > 0.3
    dyaw = (pp.yaw_obs - CAR_RY + math.pi / 2) % math.pi - math.pi / 2
    assert abs(dyaw.item()) < math.radians(6)
    assert torch.allclose(pp.ground_plane[0], torch.tensor([0.0, -1.0, 0.0, CAM_H]), atol=0.02)


def test_true_box_fits_its_pseudo_points(scene):
    from mmdet3d_skd.models.weak_losses import bev_alignment_loss
    depth, _, box = scene
    pp = extract_pseudo_points(depth, K, box, num_points=128)
    dims = torch.from_numpy(CAR_D).float()[None]

    def align(dx=0.0, dz=0.0, dyaw=0.0):
        c = torch.from_numpy(CAR_C).float()[None] + torch.tensor([[dx, 0.0, dz]])
        return bev_alignment_loss(c, dims, torch.tensor([CAR_RY + dyaw]), pp.points,
                                  pp.mask).item()

    fit = align()
    assert fit < 0.05
    assert align(dx=0.5) > fit + 0.1 and align(dz=0.5) > fit + 0.1
    assert align(dyaw=0.3) > fit + 0.1


def test_deterministic_and_generator_subsampling(scene):
    depth, _, box = scene
    a = extract_pseudo_points(depth, K, box, num_points=32)
    b = extract_pseudo_points(depth, K, box, num_points=32)
    assert torch.equal(a.points, b.points)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    r1 = extract_pseudo_points(depth, K, box, num_points=32, generator=g1)
    r2 = extract_pseudo_points(depth, K, box, num_points=32, generator=g2)
    assert torch.equal(r1.points, r2.points) and r1.mask.all()
    assert inside_car(r1.points[0]).all()


def test_degenerate_boxes_and_depth(scene):
    depth, _, box = scene
    depth = depth.clone()
    x1, y1, x2, y2 = box[0].long().tolist()
    # NaN / inf / negative pixels inside the car box are just invalid
    depth[y1 + 2, x1:x2] = float('nan')
    depth[y1 + 4, x1:x2] = float('inf')
    depth[y1 + 6, x1:x2] = -3.0
    # a region with no depth at all
    depth[0:30, 0:40] = 0.0
    boxes = torch.cat([
        box,
        torch.tensor([[5.0, 5.0, 35.0, 25.0],       # no valid depth
                      [50.0, 50.0, 50.0, 70.0],     # zero area
                      [400.0, 10.0, 500.0, 40.0],   # outside the image
                      [-50.0, -20.0, -10.0, -5.0],  # outside the image
                      [float('nan'), 0.0, 10.0, 10.0]])
    ])
    pp = extract_pseudo_points(depth, K, boxes, num_points=32)
    assert pp.valid.tolist() == [True, False, False, False, False, False]
    for t in (pp.points, pp.depth_target, pp.surface_depth, pp.yaw_obs, pp.yaw_conf,
              pp.extent, pp.ground_plane):
        assert torch.isfinite(t).all()
    assert not pp.mask[1:].any()
    assert pp.depth_target[0].item() == pytest.approx(CAR_C[2], abs=0.3)
    # all-zero depth: nothing valid, no crash, flat prior plane
    pz = extract_pseudo_points(torch.zeros(H, W), K, boxes, num_points=8)
    assert not pz.valid.any() and torch.isfinite(pz.points).all()
    # no boxes
    pe = extract_pseudo_points(depth, K, torch.zeros(0, 4), num_points=8)
    assert len(pe) == 0 and pe.points.shape == (0, 8, 3)
    with pytest.raises(ValueError, match='boxes2d'):
        extract_pseudo_points(depth, K, torch.zeros(3))


def test_cat_and_helpers(scene):
    depth, _, box = scene
    a = extract_pseudo_points(depth, K, box, num_points=16)
    b = extract_pseudo_points(depth, K, torch.zeros(0, 4), num_points=16)
    c = PseudoPoints.cat([a, b, a])
    assert len(c) == 2 and c.ground_plane.shape == (2, 4)
    c64 = c.to(dtype=torch.float64)
    assert c64.points.dtype == torch.float64 and c64.mask.dtype == torch.bool
    v = torch.tensor([[3.0, 1.0, 2.0, 9.0], [1.0, 2.0, 0.0, 0.0]])
    m = torch.tensor([[True, True, True, False], [False, False, False, False]])
    assert masked_quantile(v, m, 0.0).tolist() == [1.0, 0.0]
    assert masked_quantile(v, m, 1.0).tolist() == [3.0, 0.0]
    assert masked_quantile(v, m, 0.5).tolist() == [2.0, 0.0]
    # a lone 1.6 m face (car end) -> the length axis is the other one; a 3.9 m face is a side
    y = torch.tensor([0.2, 0.2])
    res = resolve_length_axis(y, torch.tensor([1.6, 3.9]), torch.tensor([0.05, 0.05]),
                              torch.tensor(3.9), torch.tensor(1.6))
    assert res[0].item() == pytest.approx(0.2 + math.pi / 2 - math.pi)
    assert res[1].item() == pytest.approx(0.2)


def test_batch_pseudo_points_keeps_instance_order(scene):
    depth, _, box = scene
    T = namedtuple('T', 'batch_idx boxes2d labels cam2img')
    empty_box = torch.tensor([[5.0, 5.0, 35.0, 25.0]])
    depth1 = depth.clone()
    depth1[:40] = 0.0  # image 1 has no depth in its top rows
    boxes = torch.cat([empty_box, box, box, empty_box])
    t = T(batch_idx=torch.tensor([1, 0, 1, 0]), boxes2d=boxes, labels=torch.tensor([0, 1, 1, 0]),
          cam2img=torch.eye(4).expand(4, 4, 4).clone())
    t.cam2img[:, :3, :3] = K
    prior = torch.tensor([[0.8, 1.7, 0.6], [3.9, 1.55, 1.65]])
    maps = torch.stack([depth, depth1])[:, None]
    pp = batch_pseudo_points(maps, t, prior, num_points=16)
    assert pp.valid.tolist() == [False, True, True, True]  # image 0 has depth at the top
    ref = extract_pseudo_points(depth1, K, box, dims_prior=prior[1], num_points=16)
    assert torch.equal(pp.points[2], ref.points[0])
    assert pp.depth_target[1].item() == pytest.approx(CAR_C[2], abs=0.3)
    none = batch_pseudo_points(maps, T(torch.zeros(0, dtype=torch.long), torch.zeros(0, 4),
                                       torch.zeros(0, dtype=torch.long), torch.zeros(0, 4, 4)),
                               prior, num_points=16)
    assert len(none) == 0


def test_labelled_occluder_is_not_taken_for_the_object():
    depth, (car, occ) = render(((CAR_C, CAR_D, CAR_RY), (OCC_C, CAR_D, 0.0)))
    box_car, box_occ = car_box2d(car, margin=2), car_box2d(occ, margin=2)
    # the occluder hides a good part of the car's box, and stands lower in the image
    x1, y1, x2, y2 = box_car[0].long().tolist()
    assert occ[y1:y2, x1:x2].sum() > 0.3 * car[y1:y2, x1:x2].sum()
    assert box_occ[0, 3] > box_car[0, 3]
    boxes = torch.cat([box_car, box_occ])
    naive = extract_pseudo_points(depth, K, boxes, occluder_margin=None)
    # without the second pass the occluder's nearer surface is taken for the car's
    assert not inside_car(naive.points[0][naive.mask[0]]).all()
    assert naive.surface_depth[0].item() < OCC_C[2]
    pp = extract_pseudo_points(depth, K, boxes)
    assert pp.valid.all()
    assert inside_car(pp.points[0][pp.mask[0]]).all()
    assert pp.depth_target[0].item() == pytest.approx(CAR_C[2], abs=0.4)
    assert pp.depth_target[1].item() == pytest.approx(OCC_C[2], abs=0.4)


def test_subsampled_depth_keeps_pixels_and_camera_exact():
    """Each kept pixel back-projects to the same camera point on the sub-grid as at full res."""
    from mmdet3d_skd.models.geometry import backproject
    from mmdet3d_skd.models.pseudo_points import subsample_depth
    k = torch.tensor([[700., 0., 300., 40.], [0., 700., 100., 0.2], [0., 0., 1., 0.003],
                      [0., 0., 0., 1.]])
    depth = torch.rand(12, 16) * 50 + 1
    boxes = torch.tensor([[2., 3., 10., 9.]])
    for s in (2, 3):
        sub, k_sub, b_sub = subsample_depth(depth, k, boxes, s)
        o = s // 2
        j, i = 2, 1  # a sub-pixel and its full-resolution pixel
        full = backproject(torch.tensor([[s * j + o + 0.5, s * i + o + 0.5]]),
                           depth[s * i + o, s * j + o][None], k[None])
        part = backproject(torch.tensor([[j + 0.5, i + 0.5]]), sub[i, j][None], k_sub[None])
        assert torch.allclose(full, part, atol=1e-4)
        # a box edge maps with the same affine as the pixel centres
        c = o + 0.5 - s / 2
        assert torch.allclose(b_sub * s + c, boxes)


def _face_points(centre, length, w, ry, n=21):
    """BEV points on the two faces of an ``length x w`` box (centre ``(x, z)``, yaw ``ry``) that
    the camera at the origin sees, as ``(1, M, 3)`` camera points (y = 0)."""
    a = np.array([math.cos(ry), -math.sin(ry)])  # length axis in (x, z)
    b = np.array([math.sin(ry), math.cos(ry)])
    c = np.asarray(centre, dtype=float)
    sa = -1.0 if c @ a > 0 else 1.0  # the visible end of each axis faces the origin
    sb = -1.0 if c @ b > 0 else 1.0
    t = np.linspace(-0.5, 0.5, n)[:, None]
    face_a = c + sa * 0.5 * length * a + t * w * b  # the end face (width w)
    face_b = c + sb * 0.5 * w * b + t * length * a  # the long side
    bev = np.concatenate([face_a, face_b])
    pts = np.stack([bev[:, 0], np.zeros(len(bev)), bev[:, 1]], -1)
    return torch.tensor(pts, dtype=torch.float32)[None]


@pytest.mark.parametrize('centre, ry', [((3.0, 10.0), 0.0), ((-3.0, 12.0), 0.0),
                                        ((2.0, 15.0), 0.5), ((-4.0, 20.0), -1.2)])
def test_prior_box_centre_of_exact_faces(centre, ry):
    """Points on the two visible faces of a 4 x 2 m box give its BEV centre exactly at the
    0 / 1 quantiles (yaw 0, centre (3, 10): faces x = 1 and z = 9, centre (1 + 2, 9 + 1))."""
    pts = _face_points(centre, 4.0, 2.0, ry)
    pick = torch.ones(pts.shape[:2], dtype=torch.bool)
    xz = prior_box_centre(pts, pick, torch.tensor([[ry]]), torch.tensor([4.0]),
                          torch.tensor([2.0]), q=0.0)
    assert xz.shape == (1, 1, 2)
    assert xz[0, 0].tolist() == pytest.approx(list(centre), abs=1e-4)
    # the surface rule's minimum-z face would be nearer than the centre by the half extent
    assert pts[0, :, 2].min().item() < centre[1] - 0.9


def test_box_centre_rule_on_the_rendered_car(scene):
    """On the ray-cast car (exact depth) the box rule's target is within 5 cm of the true
    centre depth (the surface rule's is 0.11 m off); an unknown rule is refused."""
    depth, _, box = scene
    pp = extract_pseudo_points(depth, K, box, dims_prior=torch.tensor(CAR_D).float(),
                               centre_rule='box')
    assert pp.valid.item()
    assert pp.depth_target.item() == pytest.approx(CAR_C[2], abs=0.05)
    with pytest.raises(ValueError, match='centre_rule'):
        extract_pseudo_points(depth, K, box, centre_rule='middle')


def _box_u(centre, length, w, ry, k):
    """u1, u2 of a ``length x w`` box's BEV corners (the 2D box's horizontal span)."""
    a = np.array([math.cos(ry), -math.sin(ry)])
    b = np.array([math.sin(ry), math.cos(ry)])
    us = [k[0, 0] * p[0] / p[1] + k[0, 2]
          for p in (np.asarray(centre) + sa * 0.5 * length * a + sb * 0.5 * w * b
                    for sa in (-1, 1) for sb in (-1, 1))]
    return torch.tensor([[min(us), max(us)]], dtype=torch.float32)


def test_fit_box_yaw_on_two_faces_and_on_one_end_face():
    """Two visible faces give the yaw (modulo pi) to the search step; one end face alone (a
    1.6 m segment, as long as a side of the 3.9 m box would hold too) is told from a side by
    the 2D box's width: a car seen end-on spans about w, not l."""
    from mmdet3d_skd.models.orientation_fit import fit_box_yaw
    k = torch.tensor([[700.0, 0, 600.0], [0, 700.0, 180.0], [0, 0, 1.0]])
    pl, pw = torch.tensor([3.9]), torch.tensor([1.6])

    def err_deg(yaw, ry):
        d = (yaw.item() - ry) % math.pi
        return math.degrees(min(d, math.pi - d))

    pts = _face_points((2.0, 15.0), 3.9, 1.6, 0.5)
    mask = torch.ones(pts.shape[:2], dtype=torch.bool)
    yaw = fit_box_yaw(pts, mask, pl, pw, _box_u((2.0, 15.0), 3.9, 1.6, 0.5, k), k, q=0.0)
    assert err_deg(yaw, 0.5) <= 2.0
    # end-on: only the rear face, x in [0.2, 1.8] at z = 15 - 3.9 / 2
    x = torch.linspace(0.2, 1.8, 17)
    end = torch.stack([x, torch.zeros_like(x), torch.full_like(x, 15.0 - 1.95)], -1)[None]
    mask = torch.ones(end.shape[:2], dtype=torch.bool)
    box_u = _box_u((1.0, 15.0), 3.9, 1.6, math.pi / 2, k)
    yaw = fit_box_yaw(end, mask, pl, pw, box_u, k, q=0.0)
    assert err_deg(yaw, math.pi / 2) <= 4.0
    # the same points with the 2D box of a car seen from the side give the other axis
    side_u = _box_u((1.0, 13.05 + 0.8), 3.9, 1.6, 0.0, k)
    assert err_deg(fit_box_yaw(end, mask, pl, pw, side_u, k, q=0.0), 0.0) <= 4.0
    # no points: yaw 0, finite
    none = fit_box_yaw(end, torch.zeros_like(mask), pl, pw, box_u, k, q=0.0)
    assert none.item() == 0.0
