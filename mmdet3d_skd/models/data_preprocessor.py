# Copyright (c) mmdet3d_skd contributors.
"""Batching of the per-image depth maps next to the images."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from mmdet3d.models.data_preprocessors import Det3DDataPreprocessor
from mmdet3d.registry import MODELS


@MODELS.register_module()
class SKDDataPreprocessor(Det3DDataPreprocessor):
    """Det3DDataPreprocessor that also batches the depth maps.

    ``inputs['depth_map']`` (a list of (1, H, W) float tensors, one per
    image, as packed by ``PackSKDInputs``) becomes
    ``batch_inputs['depth_maps']``, a (B, 1, Hp, Wp) float32 tensor padded at
    the right/bottom with 0 (invalid) to the padded size (Hp, Wp) of the
    batched images (``pad_size_divisor`` included), so pixel (v, u) of a depth
    map is pixel (v, u) of its image. Depth is never normalised. Without
    depth maps (inference) the key is absent.

    The parent's ``simple_process`` drops every input key other than
    img/points, hence this subclass. ``batch_augments`` (which would move the
    images but not the depth maps) are refused when depth maps are present.
    """

    def simple_process(self, data: dict, training: bool = False) -> dict:
        inputs = data.get('inputs', {})
        if 'depth_map' not in inputs:
            return super().simple_process(data, training)
        if training and self.batch_augments is not None:
            raise ValueError(
                'SKDDataPreprocessor: batch_augments would move the images '
                'but not the depth maps; remove them or the depth maps')
        data = dict(data)
        inputs = dict(inputs)
        depth = inputs.pop('depth_map')
        data['inputs'] = inputs
        img_sizes = self._image_sizes(inputs.get('img', None))
        out = super().simple_process(data, training)
        imgs = out['inputs'].get('imgs', None)
        pad_hw = tuple(imgs.shape[-2:]) if imgs is not None else None
        out['inputs']['depth_maps'] = self.stack_depth_maps(
            self.cast_data(depth), pad_hw, img_sizes, out['data_samples'])
        return out

    @staticmethod
    def _image_sizes(imgs) -> Optional[List[Tuple[int, int]]]:
        if imgs is None:
            return None
        if isinstance(imgs, Tensor):
            return [tuple(imgs.shape[-2:])] * imgs.shape[0]
        return [tuple(img.shape[-2:]) for img in imgs]

    def stack_depth_maps(
            self,
            depth: Union[Tensor, Sequence[Tensor]],
            pad_hw: Optional[Tuple[int, int]] = None,
            img_sizes: Optional[Sequence[Tuple[int, int]]] = None,
            data_samples: Optional[list] = None) -> Tensor:
        """Pad each (1, H, W) depth map with 0 to ``pad_hw`` and stack.

        Without ``pad_hw`` the size is the batch maximum rounded up to
        ``pad_size_divisor``. Each depth map must have its image's size.
        """
        maps = list(depth) if isinstance(depth, (list, tuple)) else list(
            depth.unbind(0))
        maps = [d[None] if d.dim() == 2 else d for d in maps]

        def name(i):
            if data_samples is not None and i < len(data_samples):
                meta = data_samples[i].metainfo
                return meta.get('img_path', meta.get('sample_idx', i))
            return i

        for i, d in enumerate(maps):
            if d.dim() != 3 or d.shape[0] != 1:
                raise ValueError(
                    f'SKDDataPreprocessor: depth map of sample {name(i)} has '
                    f'shape {tuple(d.shape)}; expected (1, H, W)')
            if img_sizes is not None and tuple(d.shape[-2:]) != tuple(
                    img_sizes[i]):
                raise ValueError(
                    f'SKDDataPreprocessor: depth map of sample {name(i)} is '
                    f'{tuple(d.shape[-2:])} but its image is '
                    f'{tuple(img_sizes[i])}')
        if pad_hw is None:
            div = self.pad_size_divisor
            h = max(d.shape[-2] for d in maps)
            w = max(d.shape[-1] for d in maps)
            pad_hw = (-(-h // div) * div, -(-w // div) * div)
        out = []
        for i, d in enumerate(maps):
            ph, pw = pad_hw[0] - d.shape[-2], pad_hw[1] - d.shape[-1]
            if ph < 0 or pw < 0:
                raise ValueError(
                    f'SKDDataPreprocessor: depth map of sample {name(i)} '
                    f'({tuple(d.shape[-2:])}) is larger than the padded '
                    f'batch {tuple(pad_hw)}')
            out.append(F.pad(d.float(), (0, pw, 0, ph), value=0.0))
        return torch.stack(out, dim=0)
