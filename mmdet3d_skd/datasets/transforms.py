# Copyright (c) mmdet3d_skd contributors.
"""Depth-map loading, depth-aware geometric augmentation and packing.

The weak training path feeds the network an image, its ``cam2img`` and a dense
depth map D (float32 metres, ``0`` = invalid, the same size as the image).
Every geometric augmentation must move the depth map exactly as the image and
update ``cam2img`` so that it keeps mapping the camera frame to the network
input image (see ``docs/architecture.md``). mmdet3d's own transforms neither
move a depth map nor keep ``cam2img`` exact, hence the subclasses below.

Typical training pipeline (weak mode)::

    dict(type='LoadImageFromFileMono3D'),
    dict(type='LoadAnnotations3D', with_bbox=True, with_label=True,
         with_bbox_3d=False, with_label_3d=False, with_bbox_depth=False),
    dict(type='LoadDepthMap'),
    dict(type='DepthRandomFlip3D', flip_ratio_bev_horizontal=0.5),
    dict(type='RandomShiftScale', shift_scale=(0.2, 0.4), aug_prob=0.3),
    dict(type='DepthAffineResize', img_scale=(1280, 384), down_ratio=4),
    dict(type='PackSKDInputs', keys=['img', 'gt_bboxes', 'gt_bboxes_labels']),
"""
import copy
import io
import os.path as osp
from typing import Optional, Sequence

import cv2
import mmcv
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.fileio import get

from mmdet3d.datasets.transforms import AffineResize, Pack3DDetInputs, RandomFlip3D, Resize3D
from mmdet3d.registry import TRANSFORMS
from .kitti_format import DEPTH_PNG_SCALE

# Per-instance fields that stay aligned with ``gt_bboxes`` through the
# pipeline (2D labels, and the 3D fields of full-supervision mode).
_ALIGNED_INSTANCE_KEYS = ('gt_bboxes_labels', 'gt_ignore_flags',
                          'gt_bboxes_3d', 'gt_labels_3d', 'centers_2d',
                          'depths', 'attr_labels')


def _sample_name(results: dict) -> str:
    """A short human-readable name of the sample for error messages."""
    parts = []
    if results.get('sample_idx', None) is not None:
        parts.append(f"sample_idx={results['sample_idx']}")
    if results.get('img_path', None):
        parts.append(f"img_path={results['img_path']}")
    return ', '.join(parts) if parts else '<unknown sample>'


def flip_cam2img(cam2img, width: float, height: float,
                 direction: str = 'horizontal') -> np.ndarray:
    """Projection matrix of a flipped image of the mirrored scene.

    A horizontal flip maps ``u -> w - u`` and mirrors the scene ``X -> -X``
    (this is how the 3D boxes are flipped). The new projection is
    ``P' = F @ P @ M`` with ``F = [[-1, 0, w], [0, 1, 0], [0, 0, 1]]`` (lifted
    to P's rows) and ``M = diag(-1, 1, 1, 1)``, i.e. for KITTI's P2
    ``P'[0, 2] = w - cx`` and ``P'[0, 3] = w * P[2, 3] - P[0, 3]`` (that is
    ``-P[0, 3]`` when ``P[2, 3] = 0``). Vertical: ``v -> h - v``, ``Y -> -Y``.

    Args:
        cam2img (array-like): 3x3, 3x4 or 4x4 projection matrix.
        width, height: Size of the (flipped) image in pixels.
        direction (str): 'horizontal', 'vertical' or 'diagonal'.

    Returns:
        np.ndarray: float64 matrix of the same shape.
    """
    P = np.array(cam2img, dtype=np.float64)
    if P.ndim != 2 or P.shape[0] not in (3, 4) or P.shape[1] not in (3, 4):
        raise ValueError(f'cam2img must be 3x3, 3x4 or 4x4, got {P.shape}')
    F = np.eye(P.shape[0])
    M = np.eye(P.shape[1])
    if direction in ('horizontal', 'diagonal'):
        F[0, 0], F[0, 2] = -1.0, width
        M[0, 0] = -1.0
    if direction in ('vertical', 'diagonal'):
        F[1, 1], F[1, 2] = -1.0, height
        M[1, 1] = -1.0
    if direction not in ('horizontal', 'vertical', 'diagonal'):
        raise ValueError(f'unknown flip direction {direction!r}')
    return F @ P @ M


def affine_cam2img(cam2img, affine: np.ndarray) -> np.ndarray:
    """``P' = A @ P``: ``A`` (3x3 image affine, last row ``[0, 0, 1]``) lifted
    to P's rows, so ``P'`` maps the camera frame to the warped image."""
    P = np.array(cam2img, dtype=np.float64)
    if P.ndim != 2 or P.shape[0] not in (3, 4) or P.shape[1] not in (3, 4):
        raise ValueError(f'cam2img must be 3x3, 3x4 or 4x4, got {P.shape}')
    A = np.eye(P.shape[0])
    A[:3, :3] = np.asarray(affine, dtype=np.float64)
    return A @ P


def _filter_instances(results: dict, keep: np.ndarray) -> None:
    """Index ``gt_bboxes`` and every field aligned with it by ``keep``."""
    n = len(keep)
    results['gt_bboxes'] = results['gt_bboxes'][keep]
    for key in _ALIGNED_INSTANCE_KEYS:
        if key not in results:
            continue
        value = results[key]
        if key == 'gt_bboxes_3d':
            if len(value) == n:
                results[key] = value[torch.from_numpy(keep)]
        elif hasattr(value, '__len__') and np.ndim(value) > 0 \
                and len(value) == n:
            results[key] = value[keep]


@TRANSFORMS.register_module()
class LoadDepthMap(BaseTransform):
    """Load the dense depth map of a sample into ``results['depth_map']``.

    The result is a float32 (H, W) array in metres, ``0`` = invalid.

    Where the file is:

    1. ``results['images'][cam]['depth_path']`` (``cam`` = 'CAM2', or the
       only camera) or ``results['depth_path']``, joined with
       ``depth_prefix``; when ``depth_prefix`` is None, with the image's
       folder with its ``img_dir`` component replaced by ``depth_dir``
       (``data_root/training/image_2`` -> ``data_root/training/depth_2``).
    2. Otherwise derived from ``results['img_path']``: the path component
       ``img_dir`` becomes ``depth_dir`` and the extension ``depth_ext``
       (``training/image_2/000000.png`` -> ``training/depth_2/000000.png``).

    Formats (by extension): ``.png`` uint16 holding ``metres * scale``
    (KITTI's convention, ``scale=256``), ``.npy`` / ``.npz`` float metres
    (``npz``: key ``npz_key`` or its single array). ``(1, H, W)`` and
    ``(H, W, 1)`` are squeezed.

    NaN, inf and negative values become 0 (invalid, masked downstream); their
    fraction of the pixels is stored in ``results['depth_invalid_fraction']``
    (a PackSKDInputs meta key). An all-zero depth map is allowed.

    A depth map of another size than its image raises a ValueError
    (``mismatch='error'``, default), or is resized to the image size with
    nearest-neighbour interpolation (``mismatch='resize'``; no averaging of
    depths across object boundaries; only right when the depth map covers
    exactly the image's field of view).

    Args:
        depth_prefix (str, optional): Folder of relative ``depth_path``s.
        img_dir (str): Image folder name to replace. Defaults to 'image_2'.
        depth_dir (str): Depth folder name. Defaults to 'depth_2'.
        depth_ext (str): Extension of derived depth paths. Defaults to '.png'.
        scale (float): PNG value per metre. Defaults to 256.
        npz_key (str): Array name in ``.npz`` files. Defaults to 'depth'.
        mismatch (str): 'error' or 'resize'. Defaults to 'error'.
        backend_args (dict, optional): mmengine file backend arguments.
    """

    def __init__(self,
                 depth_prefix: Optional[str] = None,
                 img_dir: str = 'image_2',
                 depth_dir: str = 'depth_2',
                 depth_ext: str = '.png',
                 scale: float = DEPTH_PNG_SCALE,
                 npz_key: str = 'depth',
                 mismatch: str = 'error',
                 backend_args: Optional[dict] = None) -> None:
        if mismatch not in ('error', 'resize'):
            raise ValueError(
                f"LoadDepthMap: mismatch must be 'error' or 'resize', got "
                f'{mismatch!r}')
        if not scale > 0:
            raise ValueError(f'LoadDepthMap: scale must be > 0, got {scale}')
        self.depth_prefix = depth_prefix
        self.img_dir = img_dir
        self.depth_dir = depth_dir
        self.depth_ext = depth_ext
        self.scale = float(scale)
        self.npz_key = npz_key
        self.mismatch = mismatch
        self.backend_args = backend_args

    # ---------------------------------------------------------------- paths
    def _replace_img_dir(self, path: str, results: dict) -> str:
        parts = path.replace('\\', '/').split('/')
        if self.img_dir not in parts:
            raise ValueError(
                f'LoadDepthMap: cannot derive the depth path of '
                f'{_sample_name(results)}: the folder {self.img_dir!r} is '
                f'not in {path!r}; set depth_prefix or img_dir/depth_dir, or '
                f"give 'depth_path' in the info file")
        idx = len(parts) - 1 - parts[::-1].index(self.img_dir)
        parts[idx] = self.depth_dir
        return '/'.join(parts)

    def _depth_path(self, results: dict) -> str:
        rel = None
        images = results.get('images', None)
        if isinstance(images, dict):
            cam = 'CAM2' if 'CAM2' in images else (
                next(iter(images)) if len(images) == 1 else None)
            if cam is not None and isinstance(images[cam], dict):
                rel = images[cam].get('depth_path', None)
        if rel is None:
            rel = results.get('depth_path', None)
        img_path = results.get('img_path', None)
        if rel is not None:
            if self.depth_prefix is not None:
                return osp.join(self.depth_prefix, rel)
            if osp.isabs(rel) or not img_path:
                return rel
            return osp.join(
                self._replace_img_dir(osp.dirname(img_path), results), rel)
        if not img_path:
            raise KeyError(
                f'LoadDepthMap: {_sample_name(results)} has neither '
                "'depth_path' nor 'img_path'")
        derived = osp.splitext(self._replace_img_dir(img_path,
                                                     results))[0]
        derived += self.depth_ext
        if self.depth_prefix is not None:
            return osp.join(self.depth_prefix, osp.basename(derived))
        return derived

    # -------------------------------------------------------------- reading
    def _read(self, path: str, results: dict) -> np.ndarray:
        where = f'depth map {path} of {_sample_name(results)}'
        try:
            data = get(path, backend_args=self.backend_args)
        except FileNotFoundError as e:
            raise FileNotFoundError(f'LoadDepthMap: {where} not found') from e
        ext = osp.splitext(path)[1].lower()
        if ext == '.png':
            depth = cv2.imdecode(
                np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
            if depth is None:
                raise ValueError(f'LoadDepthMap: cannot decode {where} '
                                 '(truncated or not a PNG)')
            if depth.dtype != np.uint16:
                raise ValueError(
                    f'LoadDepthMap: {where} is a {depth.dtype} PNG; depth '
                    f'PNGs must be uint16 holding metres * {self.scale:g}')
            depth = self._squeeze(depth, where)
            return depth.astype(np.float32) / np.float32(self.scale)
        if ext in ('.npy', '.npz'):
            try:
                loaded = np.load(io.BytesIO(data), allow_pickle=False)
                if ext == '.npz':
                    names = list(loaded.files)
                    if self.npz_key in names:
                        loaded = loaded[self.npz_key]
                    elif len(names) == 1:
                        loaded = loaded[names[0]]
                    else:
                        raise KeyError(
                            f'LoadDepthMap: {where} has arrays {names}, none '
                            f'named {self.npz_key!r}')
            except KeyError:
                raise
            except Exception as e:  # zipfile / numpy format errors
                raise ValueError(
                    f'LoadDepthMap: cannot read {where} (truncated or not a '
                    f'{ext} file): {e}') from e
            if not np.issubdtype(loaded.dtype, np.floating):
                raise ValueError(
                    f'LoadDepthMap: {where} has dtype {loaded.dtype}; '
                    f'{ext} depth maps must hold float metres')
            return self._squeeze(loaded, where).astype(np.float32)
        raise ValueError(f'LoadDepthMap: unsupported extension of {where} '
                         '(expected .png, .npy or .npz)')

    @staticmethod
    def _squeeze(depth: np.ndarray, where: str) -> np.ndarray:
        if depth.ndim == 3 and 1 in (depth.shape[0], depth.shape[-1]):
            depth = depth[0] if depth.shape[0] == 1 else depth[..., 0]
        if depth.ndim != 2:
            raise ValueError(f'LoadDepthMap: {where} has shape '
                             f'{depth.shape}; expected (H, W)')
        return depth

    def transform(self, results: dict) -> dict:
        path = self._depth_path(results)
        depth = np.array(self._read(path, results), dtype=np.float32)
        invalid = ~np.isfinite(depth) | (depth < 0)
        depth[invalid] = 0.0
        results['depth_invalid_fraction'] = float(
            invalid.sum()) / max(depth.size, 1)

        if 'img' in results and not isinstance(results['img'], list):
            target = tuple(results['img'].shape[:2])
        elif 'img_shape' in results:
            target = tuple(results['img_shape'][:2])
        else:
            target = None
        if target is not None and depth.shape != target:
            if self.mismatch == 'error':
                raise ValueError(
                    f'LoadDepthMap: depth map {path} of '
                    f'{_sample_name(results)} is {depth.shape[0]}x'
                    f'{depth.shape[1]} (HxW) but its image is {target[0]}x'
                    f"{target[1]}; fix the file or use mismatch='resize'")
            depth = cv2.resize(
                depth, (target[1], target[0]),
                interpolation=cv2.INTER_NEAREST)
        results['depth_map'] = depth
        results['depth_path'] = path
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(depth_prefix={self.depth_prefix}'
                f', img_dir={self.img_dir}, depth_dir={self.depth_dir}, '
                f'scale={self.scale}, mismatch={self.mismatch})')


@TRANSFORMS.register_module()
class DepthRandomFlip3D(RandomFlip3D):
    """RandomFlip3D that also flips the depth map and keeps cam2img exact.

    Reuses the parent's flip decision; when the image is flipped:

    - ``depth_map`` is flipped like the image;
    - ``cam2img`` becomes :func:`flip_cam2img` of it, i.e.
      ``P'[0, 2] = w - cx`` *and* ``P'[0, 3] = w * P[2, 3] - P[0, 3]``.
      mmdet3d only applies the first (and only when ``centers_2d`` is
      present, which weak mode never has), leaving ``u`` off by
      ``(2 P[0, 3] - w P[2, 3]) / (z + P[2, 3])`` px (KITTI P2:
      ``P[0, 3] ~ 45.8``, ``P[2, 3] ~ 0.005``).

    3D boxes / points / ``centers_2d`` are flipped as in the parent when
    present (full-supervision mode); without them (weak mode) nothing 3D is
    touched (the parent would look for ``points``). Only ``sync_2d=True`` is
    supported: the 3D flip must be the image flip.
    """

    def __init__(self, sync_2d: bool = True, **kwargs) -> None:
        if not sync_2d:
            raise ValueError('DepthRandomFlip3D supports only sync_2d=True: '
                             'the depth map and cam2img follow the image flip')
        super().__init__(sync_2d=sync_2d, **kwargs)

    def _flip(self, results: dict) -> None:
        direction = results['flip_direction']
        super()._flip(results)  # image, 2D boxes (numpy or BaseBoxes)
        h, w = results['img'].shape[:2]
        if 'depth_map' in results:
            results['depth_map'] = np.ascontiguousarray(
                mmcv.imflip(results['depth_map'], direction=direction))
        if 'cam2img' in results:
            results['cam2img'] = flip_cam2img(results['cam2img'], w, h,
                                              direction)

    def random_flip_data_3d(self,
                            input_dict: dict,
                            direction: str = 'horizontal') -> None:
        """Flip 3D boxes / points / centers_2d when present.

        Rewritten from the parent because the parent requires ``points``
        when there are no 3D boxes and edits ``cam2img[0][2]`` itself
        (cam2img is handled exactly in :meth:`_flip`).
        """
        if self.flip_box3d:
            if 'gt_bboxes_3d' in input_dict:
                if 'points' in input_dict:
                    input_dict['points'] = input_dict['gt_bboxes_3d'].flip(
                        direction, points=input_dict['points'])
                else:
                    input_dict['gt_bboxes_3d'].flip(direction)
            elif 'points' in input_dict:
                input_dict['points'].flip(direction)
        if 'centers_2d' in input_dict:
            if direction != 'horizontal':
                raise ValueError('DepthRandomFlip3D: centers_2d support only '
                                 'the horizontal flip of images')
            w = input_dict['img_shape'][1]
            input_dict['centers_2d'][..., 0] = \
                w - input_dict['centers_2d'][..., 0]


@TRANSFORMS.register_module()
class DepthAffineResize(AffineResize):
    """AffineResize that warps the depth map and updates cam2img.

    With ``A`` the 3x3 affine from the input image to the output image
    (the parent's matrix for ``center``/``size``/``img_scale``):

    - ``depth_map`` is warped by ``cv2.warpAffine`` with the same matrix,
      nearest interpolation (no mixing of depths across edges), border 0
      (invalid);
    - ``cam2img = A @ cam2img`` (``A`` lifted to P's rows), the previous one
      kept in ``ori_cam2img`` (unless already set). The parent leaves cam2img
      as it is and records ``trans_mat`` (SMOKE's convention: SMOKE's head
      combines the original cam2img with trans_mat). Our head uses cam2img
      directly, so it must be updated; set ``update_cam2img=False`` for a
      head that uses SMOKE's convention;
    - 2D boxes whose extent inside the output image is under 1 px in width or
      height are dropped with their labels and aligned 3D fields. The parent
      filters only through ``centers_2d``, which weak mode does not have.
    """

    def __init__(self,
                 img_scale,
                 down_ratio,
                 bbox_clip_border: bool = True,
                 update_cam2img: bool = True,
                 min_box_size: float = 1.0) -> None:
        super().__init__(img_scale, down_ratio, bbox_clip_border)
        self.update_cam2img = update_cam2img
        self.min_box_size = float(min_box_size)

    def transform(self, results: dict) -> dict:
        if 'center' in results:
            center, size = results['center'], results['size']
        else:
            height, width = results['img'].shape[:2]
            center = np.array([width / 2, height / 2], dtype=np.float32)
            size = np.array([width, height], dtype=np.float32)
        affine = self._get_transform_matrix(center, size, self.img_scale)
        cam2img = copy.deepcopy(results.get('cam2img', None))

        results = super().transform(results)

        if 'depth_map' in results:
            results['depth_map'] = cv2.warpAffine(
                results['depth_map'],
                affine[:2, :],
                tuple(self.img_scale),
                flags=cv2.INTER_NEAREST,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0.0)
        if self.update_cam2img and cam2img is not None:
            results.setdefault('ori_cam2img', cam2img)
            results['cam2img'] = affine_cam2img(cam2img, affine)

        boxes = results.get('gt_bboxes', None)
        if isinstance(boxes, np.ndarray) and boxes.ndim == 2:
            out_w, out_h = self.img_scale
            x = np.clip(boxes[:, [0, 2]], 0, out_w)
            y = np.clip(boxes[:, [1, 3]], 0, out_h)
            bw, bh = x[:, 1] - x[:, 0], y[:, 1] - y[:, 0]
            keep = (bw >= self.min_box_size) & (bh >= self.min_box_size)
            if not keep.all():
                _filter_instances(results, keep)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(img_scale={self.img_scale}, '
                f'down_ratio={self.down_ratio}, '
                f'update_cam2img={self.update_cam2img})')


@TRANSFORMS.register_module()
class RandomScaleCrop(BaseTransform):
    """A random window of the image at a random scale, for ``DepthAffineResize``.

    Records ``center`` and ``size`` (as mmdet3d's ``RandomShiftScale`` does) so that the
    following ``DepthAffineResize(img_scale=(W, H))`` maps a window of ``(W / r, H / r)`` input
    pixels around ``center`` onto the ``W x H`` network input: a crop at scale
    ``r ~ U(scale)`` (output pixels per input pixel). Training on crops at or near native
    resolution and testing on the whole image at the same scale keeps a far car many pixels
    tall for the cost of a small input (the encoder and head are fully convolutional);
    ``cam2img`` follows through ``DepthAffineResize``. mmdet3d's ``RandomShiftScale`` only
    shifts and scales the whole image by a few tenths, hence this transform.

    The window's centre is uniform over the positions that keep the window inside the image
    (centred on an axis where the window is larger than the image).

    Args:
        img_scale: ``(W, H)`` of the network input, the same as ``DepthAffineResize``'s.
        scale: ``(low, high)`` range of ``r``.
    """

    def __init__(self, img_scale: Sequence[int], scale: Sequence[float]) -> None:
        if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
            raise ValueError(f'RandomScaleCrop: scale must be (low, high) with '
                             f'0 < low <= high, got {scale}')
        self.img_scale = tuple(int(v) for v in img_scale)
        self.scale = (float(scale[0]), float(scale[1]))

    def transform(self, results: dict) -> dict:
        height, width = results['img'].shape[:2]
        r = np.random.uniform(*self.scale)
        size = np.array(self.img_scale, dtype=np.float32) / r
        center = np.empty(2, dtype=np.float32)
        for axis, extent in enumerate((width, height)):
            free = extent - size[axis]
            center[axis] = (size[axis] / 2 + np.random.uniform(0, free) if free > 0
                            else extent / 2)
        results['center'], results['size'] = center, size
        results['affine_aug'] = True
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(img_scale={self.img_scale}, '
                f'scale={self.scale})')


@TRANSFORMS.register_module()
class DepthResize3D(Resize3D):
    """Resize3D that also resizes the depth map (nearest interpolation) to
    the resized image. cam2img rows 0/1 are scaled by the parent
    (``u' = sx * u``, ``v' = sy * v``)."""

    def transform(self, results: dict) -> dict:
        if 'cam2img' in results:
            results['cam2img'] = np.array(results['cam2img'],
                                          dtype=np.float64)
        results = super().transform(results)
        if 'depth_map' in results:
            h, w = results['img'].shape[:2]
            if results['depth_map'].shape[:2] != (h, w):
                results['depth_map'] = cv2.resize(
                    results['depth_map'], (w, h),
                    interpolation=cv2.INTER_NEAREST)
        return results


@TRANSFORMS.register_module()
class PackSKDInputs(Pack3DDetInputs):
    """Pack3DDetInputs that also packs the depth map.

    ``results['depth_map']`` (H, W) becomes ``inputs['depth_map']``, a
    (1, H, W) float32 tensor, whenever it is present (the key is added to
    ``keys``); it must have the image's size, else a ValueError names the
    sample (a geometric transform that is not depth-aware was used).
    The meta keys are the parent's plus ``depth_path`` and
    ``depth_invalid_fraction``.
    """
    INPUTS_KEYS = ['points', 'img', 'depth_map']
    DEFAULT_META_KEYS = (
        'img_path', 'ori_shape', 'img_shape', 'lidar2img', 'depth2img',
        'cam2img', 'pad_shape', 'scale_factor', 'flip', 'flip_direction',
        'pcd_horizontal_flip', 'pcd_vertical_flip', 'box_mode_3d',
        'box_type_3d', 'img_norm_cfg', 'num_pts_feats', 'pcd_trans',
        'sample_idx', 'pcd_scale_factor', 'pcd_rotation', 'pcd_rotation_angle',
        'lidar_path', 'transformation_3d_flow', 'trans_mat', 'affine_aug',
        'sweep_img_metas', 'ori_cam2img', 'cam2global', 'crop_offset',
        'img_crop_offset', 'resize_img_shape', 'lidar2cam', 'ori_lidar2img',
        'num_ref_frames', 'num_views', 'ego2global', 'axis_align_matrix',
        'depth_path', 'depth_invalid_fraction')

    def __init__(self,
                 keys: Sequence[str],
                 meta_keys: Sequence[str] = DEFAULT_META_KEYS) -> None:
        keys = tuple(keys)
        if 'depth_map' not in keys:
            keys = keys + ('depth_map', )
        super().__init__(keys=keys, meta_keys=tuple(meta_keys))

    def pack_single_results(self, results: dict) -> dict:
        if 'depth_map' in results:
            depth = results['depth_map']
            if isinstance(depth, np.ndarray):
                if depth.ndim != 2:
                    raise ValueError(
                        f'PackSKDInputs: depth_map of {_sample_name(results)}'
                        f' has shape {depth.shape}; expected (H, W)')
                img = results.get('img', None)
                if isinstance(img, np.ndarray) and \
                        tuple(img.shape[:2]) != depth.shape:
                    raise ValueError(
                        f'PackSKDInputs: depth_map of {_sample_name(results)}'
                        f' is {depth.shape} but the image is '
                        f'{tuple(img.shape[:2])}: a geometric transform '
                        'moved the image but not the depth map (use the '
                        'Depth* transforms)')
                depth = torch.from_numpy(
                    np.ascontiguousarray(depth, dtype=np.float32))[None]
            results['depth_map'] = depth
        return super().pack_single_results(results)
