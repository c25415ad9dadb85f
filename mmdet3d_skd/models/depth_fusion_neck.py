"""DepthFusionNeck: the teacher's depth encoder and its fusion into the image feature."""
from typing import Sequence

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmdet3d.registry import MODELS
from .geometry import backproject, cell_centres

DEPTH_CHANNELS = ('log_depth', 'inv_depth', 'valid', 'x', 'y', 'z')


def pool_depth(depth: Tensor, size: Sequence[int]) -> Tensor:
    """Resize a sparse/dense depth map (B,1,H,W) to ``size`` by the mean of its valid pixels.

    Bilinear resizing would mix invalid zeros into the values; a masked average keeps every
    output cell either the mean of its valid depths or 0 (invalid). Non-finite and
    non-positive depths count as invalid.
    """
    ok = torch.isfinite(depth) & (depth > 0)
    valid = ok.to(depth.dtype)
    num = F.adaptive_avg_pool2d(torch.where(ok, depth, torch.zeros_like(depth)), size)
    den = F.adaptive_avg_pool2d(valid, size)
    return torch.where(den > 0, num / den.clamp(min=1e-6), torch.zeros_like(num))


def depth_encoding(depth: Tensor, cam2img: Tensor, input_hw: Sequence[int],
                   depth_scale: float = 40.0) -> Tensor:
    """The depth channels the teacher sees, on the grid of ``depth`` (B,1,h,w).

    Channels (``DEPTH_CHANNELS``): log(z), 1/z, the validity mask, and the back-projected
    camera-frame X/z_s, Y/z_s, Z/z_s of each cell centre through ``cam2img`` (B,4,4) of the
    input image of size ``input_hw``, with z_s = ``depth_scale``; all 0 where depth is invalid.
    """
    b, _, h, w = depth.shape
    valid = depth > 0
    z = depth.clamp(min=1e-3)
    uv = cell_centres(h, w, input_hw, depth.device, depth.dtype)[None].expand(b, -1, -1)
    k = cam2img[:, None].expand(-1, h * w, -1, -1)
    xyz = backproject(uv.reshape(-1, 2), z.reshape(-1), k.reshape(-1, 4, 4))
    xyz = xyz.reshape(b, h, w, 3).permute(0, 3, 1, 2) / depth_scale
    chans = torch.cat([torch.log(z), 1.0 / z, torch.ones_like(z), xyz], 1)
    return chans * valid.to(depth.dtype)


@MODELS.register_module()
class DepthFusionNeck(BaseModule):
    """Teacher branch neck: encodes the depth map and fuses it into the image feature.

    F_D = E(depth_encoding(D, K)), a small conv encoder on the image feature's grid; then
    ``fusion='gated'`` (default): F_3D = F_G + sigmoid(conv([F_G, F_D])) * proj(F_D);
    ``fusion='add'``: F_3D = F_G + proj(F_D); ``fusion='concat'``: F_3D = conv([F_G, F_D]).
    The result is the teacher's "3D-like" feature; it runs at training time only.

    Args:
        in_channels: channels of F_G.
        depth_channels: channels of F_D.
        num_convs: conv layers of the depth encoder.
        fusion: 'gated', 'add' or 'concat'.
        depth_scale: metres dividing the back-projected X/Y/Z channels.
        norm_cfg: normalisation of the encoder convs.
    """

    def __init__(self,
                 in_channels: int,
                 depth_channels: int = 64,
                 num_convs: int = 3,
                 fusion: str = 'gated',
                 depth_scale: float = 40.0,
                 norm_cfg: dict = dict(type='GN', num_groups=16),
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if fusion not in ('gated', 'add', 'concat'):
            raise ValueError(f"DepthFusionNeck: fusion must be 'gated', 'add' or "
                             f"'concat', got {fusion!r}")
        self.fusion = fusion
        self.depth_scale = depth_scale
        layers, c = [], len(DEPTH_CHANNELS)
        for _ in range(num_convs):
            layers.append(ConvModule(c, depth_channels, 3, padding=1, norm_cfg=norm_cfg))
            c = depth_channels
        self.encoder = nn.Sequential(*layers)
        if fusion == 'concat':
            self.fuse = nn.Conv2d(in_channels + depth_channels, in_channels, 1)
        else:
            self.proj = nn.Conv2d(depth_channels, in_channels, 1)
        if fusion == 'gated':
            self.gate = nn.Conv2d(in_channels + depth_channels, in_channels, 1)

    def encode_depth(self, feat: Tensor, depth: Tensor, cam2img: Tensor,
                     input_hw: Sequence[int]) -> Tensor:
        """F_D on the grid of ``feat`` from the depth map (B,1,H,W) of the input image."""
        small = pool_depth(depth, feat.shape[-2:])
        return self.encoder(depth_encoding(small, cam2img, input_hw, self.depth_scale))

    def forward(self, feat: Tensor, depth: Tensor, cam2img: Tensor,
                input_hw: Sequence[int]) -> Tensor:
        """F_3D from F_G ``feat`` (B,C,h,w), depth (B,1,H,W) and ``cam2img`` (B,4,4)."""
        f_d = self.encode_depth(feat, depth, cam2img, input_hw)
        if self.fusion == 'concat':
            return self.fuse(torch.cat([feat, f_d], 1))
        fused = self.proj(f_d)
        if self.fusion == 'gated':
            fused = torch.sigmoid(self.gate(torch.cat([feat, f_d], 1))) * fused
        return feat + fused
