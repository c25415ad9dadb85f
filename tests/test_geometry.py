import math

import pytest
import torch

from mmdet3d_skd.models.geometry import (alpha_to_yaw, backproject, bev_box_corners, box_corners,
                                         camera_in_box_bev, camera_rays, cell_centres,
                                         gravity_to_bottom, project_points, to_4x4, to_box_bev,
                                         wrap_angle, yaw_to_alpha)

# KITTI 000000's P2 (with its translation column)
P2 = torch.tensor([[721.5377, 0.0, 609.5593, 44.85728],
                   [0.0, 721.5377, 172.854, 0.2163791],
                   [0.0, 0.0, 1.0, 0.002745884]], dtype=torch.float64)


def test_to_4x4_shapes_and_values():
    K = P2[:, :3]
    for m in (K, P2, to_4x4(P2)):
        out = to_4x4(m)
        assert out.shape == (4, 4)
        assert torch.equal(out[:3, :m.shape[1]], m[:3, :m.shape[1]])
        assert torch.equal(out[3], torch.tensor([0., 0., 0., 1.], dtype=torch.float64))
    batched = to_4x4(K.expand(5, 3, 3))
    assert batched.shape == (5, 4, 4)
    assert torch.equal(batched[:, 3, 3], torch.ones(5, dtype=torch.float64))
    with pytest.raises(ValueError, match='3x3, 3x4 or 4x4'):
        to_4x4(torch.zeros(2, 3))


def test_project_matches_hand_and_mmdet3d():
    from mmdet3d.structures import points_cam2img
    pts = torch.tensor([[0.0, 0.0, 10.0], [2.0, 1.5, 20.0]], dtype=torch.float64)
    uv, s = project_points(pts, P2)
    # by hand: u = (f x + cx z + tx) / (z + tz)
    u0 = (609.5593 * 10 + 44.85728) / (10 + 0.002745884)
    assert uv[0, 0].item() == pytest.approx(u0, abs=1e-9)
    assert s[1].item() == pytest.approx(20.002745884, abs=1e-12)
    ref = points_cam2img(pts, P2, with_depth=True)
    assert torch.allclose(uv, ref[:, :2], atol=1e-9)
    assert torch.allclose(s, ref[:, 2], atol=1e-12)


def test_backproject_is_exact_inverse_at_camera_depth():
    g = torch.Generator().manual_seed(0)
    pts = torch.randn(50, 3, generator=g, dtype=torch.float64) * torch.tensor(
        [8.0, 1.0, 10.0], dtype=torch.float64) + torch.tensor([0.0, 1.0, 25.0], dtype=torch.float64)
    cam = to_4x4(P2).expand(50, 4, 4)
    uv, _ = project_points(pts, cam)
    back = backproject(uv, pts[:, 2], cam)
    assert torch.allclose(back, pts, atol=1e-9)
    # a general (skewed, rotated) projection is inverted too
    Pg = P2.clone()
    Pg[0, 1], Pg[2, 0], Pg[2, 1] = 3.0, 1e-3, -2e-3
    uv, _ = project_points(pts, Pg)
    assert torch.allclose(backproject(uv, pts[:, 2], Pg), pts, atol=1e-7)


def test_backproject_gradient_flows():
    uv = torch.tensor([[600.0, 180.0]], requires_grad=True)
    z = torch.tensor([15.0], requires_grad=True)
    x = backproject(uv, z, P2.float())
    x.sum().backward()
    # dX/du = z / f
    assert uv.grad[0, 0].item() == pytest.approx(15.0 / 721.5377 + 0, rel=1e-3)
    assert z.grad.item() != 0


def test_box_corners_equal_mmdet3d():
    from mmdet3d.structures import CameraInstance3DBoxes
    g = torch.Generator().manual_seed(1)
    n = 6
    center = torch.randn(n, 3, generator=g) * 5 + torch.tensor([0.0, 1.0, 20.0])
    dims = torch.rand(n, 3, generator=g) * 3 + 0.5
    yaw = (torch.rand(n, generator=g) - 0.5) * 2 * math.pi
    bottom = gravity_to_bottom(center, dims)
    ref = CameraInstance3DBoxes(torch.cat([bottom, dims, yaw[:, None]], dim=1)).corners
    assert torch.allclose(box_corners(center, dims, yaw), ref, atol=1e-5)
    # gravity centre is what mmdet3d calls gravity_center
    assert torch.allclose(
        CameraInstance3DBoxes(torch.cat([bottom, dims, yaw[:, None]], dim=1)).gravity_center,
        center, atol=1e-5)


def test_local_length_axis_convention():
    # a local point (l/2, 0, 0) maps to (l/2 cos ry, 0, -l/2 sin ry) (docs/architecture.md)
    c = box_corners(torch.zeros(1, 3), torch.tensor([[4.0, 0.0, 0.0]]), torch.tensor([0.5]))
    x1 = c[0, 4]  # x1 corner of a zero-width box
    assert torch.allclose(x1, torch.tensor([2 * math.cos(0.5), 0.0, -2 * math.sin(0.5)]),
                          atol=1e-6)


def test_bev_frame_round_trip():
    center = torch.tensor([[3.0, 1.0, 12.0]])
    dims = torch.tensor([[4.0, 1.5, 2.0]])
    yaw = torch.tensor([0.7])
    corners = bev_box_corners(center, dims, yaw)  # (1, 4, 2) camera (x, z)
    local = to_box_bev(corners, center, yaw)
    expect = torch.tensor([[[2.0, 1.0], [-2.0, 1.0], [-2.0, -1.0], [2.0, -1.0]]])
    assert torch.allclose(local, expect, atol=1e-5)
    # bev corners are the bottom corners of box_corners (x, z)
    full = box_corners(center, dims, yaw)[0, :, [0, 2]]
    for k in range(4):
        assert (full - corners[0, k]).norm(dim=-1).min() < 1e-5
    cam = camera_in_box_bev(center, yaw)
    assert torch.allclose(cam, to_box_bev(torch.zeros(1, 1, 3), center, yaw)[:, 0])


def test_angles():
    a = torch.tensor([0.0, math.pi, -math.pi, 3 * math.pi + 0.1, -0.1])
    w = wrap_angle(a)
    assert torch.all(w >= -math.pi) and torch.all(w < math.pi)
    assert torch.allclose(torch.cos(w), torch.cos(a), atol=1e-6)
    assert w[1].item() == pytest.approx(-math.pi)
    assert wrap_angle(torch.tensor(1.0), math.pi / 2).item() == pytest.approx(1.0 - math.pi / 2)
    center = torch.tensor([[5.0, 1.0, 5.0], [-3.0, 1.0, 30.0]])
    yaw = torch.tensor([0.3, -2.9])
    alpha = yaw_to_alpha(yaw, center)
    assert alpha[0].item() == pytest.approx(0.3 - math.pi / 4, abs=1e-6)
    assert torch.allclose(alpha_to_yaw(alpha, center), yaw, atol=1e-6)


def test_cell_centres_are_the_pixel_centres_of_each_cell():
    uv = cell_centres(2, 3, (8, 12))  # 4 x 4 pixel cells
    assert uv.shape == (6, 2)
    assert uv[0].tolist() == [2.0, 2.0]
    assert uv[2].tolist() == [10.0, 2.0]
    assert uv[3].tolist() == [2.0, 6.0]


def test_camera_rays_by_hand_and_through_projection():
    K = torch.tensor([[[100., 0., 50.], [0., 200., 20.], [0., 0., 1.]]])
    rays = camera_rays(K, (4, 10), (40, 100))  # cells of 10 x 10 pixels
    assert rays.shape == (1, 2, 4, 10)
    # cell (row 0, col 0) is centred at pixel (5, 5): ((5 - 50) / 100, (5 - 20) / 200)
    assert rays[0, :, 0, 0].tolist() == pytest.approx([-0.45, -0.075])
    assert rays[0, :, 3, 9].tolist() == pytest.approx([0.45, 0.075])
    # with KITTI's translation column: the ray is the back-projection at Z = 1, so the point
    # (X/Z, Y/Z, 1) projects back onto the cell centre
    P = to_4x4(P2.float())[None]
    rays = camera_rays(P, (3, 5), (375, 1242))
    pts = torch.cat([rays, torch.ones_like(rays[:, :1])], 1).permute(0, 2, 3, 1).reshape(-1, 3)
    uv, _ = project_points(pts, P[0])
    assert torch.allclose(uv, cell_centres(3, 5, (375, 1242)), atol=1e-3)
