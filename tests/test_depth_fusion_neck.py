"""DepthFusionNeck: masked depth pooling, the depth channels, and the gated fusion."""
import math

import pytest
import torch

from mmdet3d_skd.models.depth_fusion_neck import DepthFusionNeck, depth_encoding, pool_depth
from mmdet3d_skd.models.geometry import project_points

K = torch.tensor([[700., 0., 300., 40.], [0., 700., 100., 0.2], [0., 0., 1., 0.003],
                  [0., 0., 0., 1.]])


def test_pool_depth_is_the_mean_of_valid_pixels():
    d = torch.tensor([[[[10., 0.], [20., 30.]]]])  # one invalid pixel
    out = pool_depth(d, (1, 1))
    assert out.item() == pytest.approx(20.0)  # (10 + 20 + 30) / 3, the zero ignored
    assert pool_depth(torch.zeros(1, 1, 4, 4), (2, 2)).abs().sum() == 0


def test_depth_encoding_channels_by_hand():
    depth = torch.zeros(1, 1, 2, 2)
    depth[0, 0, 1, 0] = 10.0  # cell (x=0, y=1) valid
    enc = depth_encoding(depth, K[None], input_hw=(8, 8), depth_scale=40.0)
    assert enc.shape == (1, 6, 2, 2)
    cell = enc[0, :, 1, 0]
    assert cell[0] == pytest.approx(math.log(10.0))
    assert cell[1] == pytest.approx(0.1)
    assert cell[2] == 1.0
    xyz = cell[3:] * 40.0
    assert xyz[2] == pytest.approx(10.0, abs=1e-4)
    # the back-projected point projects onto the cell centre (2, 6) of the 8x8 input
    uv, _ = project_points(xyz[None], K[None])
    assert torch.allclose(uv[0], torch.tensor([2.0, 6.0]), atol=1e-3)
    # invalid cells are all zeros
    assert enc[0, :, 0, 0].abs().sum() == 0


@pytest.mark.parametrize('fusion', ['gated', 'add', 'concat'])
def test_fusion_shapes_and_gradients(fusion):
    torch.manual_seed(0)
    neck = DepthFusionNeck(in_channels=16, depth_channels=16, fusion=fusion)
    feat = torch.randn(2, 16, 6, 8, requires_grad=True)
    depth = torch.rand(2, 1, 24, 32) * 50
    out = neck(feat, depth, K[None].expand(2, 4, 4), input_hw=(24, 32))
    assert out.shape == feat.shape
    out.square().mean().backward()
    assert feat.grad.abs().sum() > 0
    assert neck.encoder[0].conv.weight.grad.abs().sum() > 0


def test_gated_fusion_formula():
    """F_3D = F_G + sigmoid(gate([F_G, F_D])) * proj(F_D): with a closed gate F_3D == F_G."""
    neck = DepthFusionNeck(in_channels=4, depth_channels=16, fusion='gated')
    torch.nn.init.zeros_(neck.gate.weight)
    torch.nn.init.constant_(neck.gate.bias, -100.0)
    feat = torch.randn(1, 4, 3, 3)
    out = neck(feat, torch.full((1, 1, 12, 12), 5.0), K[None], input_hw=(12, 12))
    assert torch.allclose(out, feat, atol=1e-6)
    torch.nn.init.constant_(neck.gate.bias, 100.0)  # gate open: F_G + proj(F_D)
    f_d = neck.encode_depth(feat, torch.full((1, 1, 12, 12), 5.0), K[None], (12, 12))
    out = neck(feat, torch.full((1, 1, 12, 12), 5.0), K[None], input_hw=(12, 12))
    assert torch.allclose(out, feat + neck.proj(f_d), atol=1e-5)


def test_bad_fusion_is_a_clear_error():
    with pytest.raises(ValueError, match='fusion'):
        DepthFusionNeck(in_channels=4, fusion='multiply')
