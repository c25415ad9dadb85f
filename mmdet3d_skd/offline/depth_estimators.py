"""Depth maps for a KITTI-layout data set from an off-the-shelf monocular depth estimator.

SKD-WM3D trains from 2D boxes and a dense depth map per image (``training/depth_2/*.png``,
KITTI's convention: ``uint16`` PNG, metres x 256, 0 = invalid). This module makes those maps;
``tools/generate_depth.py`` is its command line. Nothing in mmdet3d/mmdet/mmengine runs a depth
estimator or writes depth maps, hence this module.

An *estimator* is any callable::

    f(image_rgb: np.ndarray (H, W, 3) uint8, cam2img: np.ndarray (3, 3)/(3, 4) or None)
        -> np.ndarray (H, W) float: depth in metres (or disparity / relative depth, see below)

``cam2img`` is the image's projection (KITTI ``P2``), ``None`` when the run has no intrinsics.
Two kinds are provided: :class:`HFDepthEstimator` (a Hugging Face ``transformers``
depth-estimation model saved in a local folder) and :func:`load_callable` (a user's
``module:function``).

Post-processing of a prediction ``p`` (:func:`to_metric_depth`):

* ``output_type='disparity'``: ``d = 1 / p`` where ``p > 0``;
* ``scale_mode='fixed'``: ``d = S * d``;
* ``scale_mode='ground'``: ``d = (h_cam / h_fit) * d``, ``h_fit`` the camera height over the
  ground plane fitted to the predicted points below the principal point's row
  (:func:`ground_scale`, which reuses :func:`mmdet3d_skd.models.ground_plane.fit_ground_plane`);
* non-finite, non-positive, or beyond the ``uint16`` range (> 255.99 m) -> 0 (invalid).
"""
import glob
import importlib
import importlib.util
import inspect
import logging
import os
import os.path as osp
import statistics
import sys
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from ..datasets.kitti_format import atomic_write_bytes, encode_depth_png, read_calib

logger = logging.getLogger(__name__)

IMAGE_EXTS = ('.png', '.jpg', '.jpeg')
#: ``model_type`` (or DepthAnything's ``depth_estimation_type``) -> (output type, metric?).
#: DPT/MiDaS and Depth Anything "relative" predict affine-invariant inverse depth.
KNOWN_MODELS = {
    'dpt': ('disparity', False),
    'depth_anything/relative': ('disparity', False),
    'depth_anything/metric': ('depth', True),
    'zoedepth': ('depth', True),
    'glpn': ('depth', True),
    'depth_pro': ('depth', True),
}
HF_HELP = ('get one on a machine with internet access, e.g. `hf download '
           'depth-anything/Depth-Anything-V2-Metric-Outdoor-Small-hf --local-dir '
           'Depth-Anything-V2-Metric-Outdoor-Small-hf` (older huggingface_hub: '
           '`huggingface-cli download ...`), and copy the folder over; see docs/depth_maps.md')

DepthFn = Callable[[np.ndarray, Optional[np.ndarray]], np.ndarray]


# --------------------------------------------------------------------------- estimators
def load_callable(spec: str) -> DepthFn:
    """``'package.module:function'`` (importable) or ``'path/to/file.py:function'`` -> the
    function. ValueError/ImportError say which part is wrong."""
    mod_name, sep, fn_name = spec.rpartition(':')
    if not sep or not mod_name or not fn_name:
        raise ValueError(f'--estimator {spec!r}: expected "module:function" or '
                         '"path/to/file.py:function"')
    if mod_name.endswith('.py'):
        if not osp.isfile(mod_name):
            raise FileNotFoundError(f'--estimator {spec!r}: file {mod_name} not found')
        name = '_skd_estimator_' + osp.splitext(osp.basename(mod_name))[0]
        loader_spec = importlib.util.spec_from_file_location(name, mod_name)
        module = importlib.util.module_from_spec(loader_spec)
        loader_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(mod_name)
        except ImportError as e:
            raise ImportError(f'--estimator {spec!r}: cannot import module {mod_name!r} ({e}); '
                              'is its folder on PYTHONPATH?') from e
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise ValueError(f'--estimator {spec!r}: module {mod_name!r} has no callable '
                         f'{fn_name!r}')
    return fn


class HFDepthEstimator:
    """A ``transformers`` depth-estimation model loaded from a local folder.

    ``AutoModelForDepthEstimation`` + ``AutoImageProcessor`` with ``local_files_only=True``
    (nothing is downloaded); the prediction is brought back to the input size by the
    processor's ``post_process_depth_estimation`` (which also removes ZoeDepth's padding), or by
    bilinear interpolation on versions without it.

    Attributes:
        output_type: ``'depth'``/``'disparity'`` for known architectures
            (:data:`KNOWN_MODELS`), else None.
        metric: True (metres), False (relative), None (unknown).
    """

    def __init__(self, model_dir: str, device: str = 'cpu'):
        if not osp.isdir(model_dir):
            raise FileNotFoundError(f'--model {model_dir}: no such folder; {HF_HELP}')
        if not osp.isfile(osp.join(model_dir, 'config.json')):
            raise ValueError(f'--model {model_dir}: no config.json there, not a saved '
                             f'transformers model folder; {HF_HELP}')
        try:
            import torch
            from transformers import AutoImageProcessor, AutoModelForDepthEstimation
        except ImportError as e:
            raise ImportError(f'--model needs the transformers package ({e}); install it with '
                              '`pip install transformers`') from e
        try:
            self.model = AutoModelForDepthEstimation.from_pretrained(
                model_dir, local_files_only=True).to(device).eval()
        except Exception as e:  # noqa: BLE001  transformers raises many types here
            raise RuntimeError(f'--model {model_dir}: cannot load a depth-estimation model: '
                               f'{type(e).__name__}: {e}') from e
        try:
            self.processor = AutoImageProcessor.from_pretrained(model_dir, local_files_only=True)
        except Exception as e:  # noqa: BLE001
            raise RuntimeError(f'--model {model_dir}: cannot load its image processor '
                               f'(preprocessor_config.json): {type(e).__name__}: {e}') from e
        self.torch = torch
        self.device = device
        self.model_dir = model_dir
        cfg = self.model.config
        key = cfg.model_type
        if key == 'depth_anything':
            key += '/' + str(getattr(cfg, 'depth_estimation_type', 'relative'))
        self.output_type, self.metric = KNOWN_MODELS.get(key, (None, None))
        self.model_type = key
        post = getattr(self.processor, 'post_process_depth_estimation', None)
        self._post = post
        self._post_args = set(inspect.signature(post).parameters) if post else set()

    def __call__(self, image_rgb: np.ndarray, cam2img: Optional[np.ndarray] = None) -> np.ndarray:
        torch = self.torch
        h, w = image_rgb.shape[:2]
        inputs = self.processor(images=image_rgb, return_tensors='pt')
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        with torch.inference_mode():
            out = self.model(**inputs)
            if self._post is not None:
                kw = dict(target_sizes=[(h, w)])
                if 'source_sizes' in self._post_args:
                    kw['source_sizes'] = [(h, w)]
                pred = self._post(out, **kw)[0]['predicted_depth']
            else:
                pred = torch.nn.functional.interpolate(
                    out.predicted_depth[:, None], size=(h, w), mode='bilinear',
                    align_corners=False)[0, 0]
        return pred.reshape(h, w).float().cpu().numpy()


# --------------------------------------------------------------------------- scale
def ground_scale(depth: np.ndarray, cam2img: np.ndarray, camera_height: float = 1.65,
                 ref_depth: float = 10.0, min_pixels: int = 200) -> Optional[float]:
    """Metric scale of a relative depth map from the known camera height.

    The map is first normalised so that its median below the principal point's row is
    ``ref_depth`` (``s0 = ref_depth / median``), which puts the plane fit's thresholds (metres)
    in a sensible range whatever the model's units. Then ``fit_ground_plane`` (RANSAC + least
    squares, normals within 15 deg of up) on the pixels below that row, with a camera-height
    range of ``[h/10, 10 h]``. Returns ``s0 * camera_height / h_fit``, or None when no plane
    was found (too few valid pixels or inliers).
    """
    import torch

    from mmdet3d_skd.models.ground_plane import fit_ground_plane
    d = np.asarray(depth, dtype=np.float64)
    d = np.where(np.isfinite(d) & (d > 0), d, 0.0)
    P = np.asarray(cam2img, dtype=np.float64)
    H, W = d.shape
    horizon = int(np.clip(np.ceil(P[1, 2] / P[2, 2]), 0, H))
    lower = d[horizon:]
    lower = lower[lower > 0]
    if lower.size < min_pixels:
        return None
    s0 = ref_depth / float(np.median(lower))
    plane, ok = fit_ground_plane(
        torch.from_numpy(d * s0).float(), torch.from_numpy(P).float(),
        exclude_boxes=torch.tensor([[0.0, 0.0, float(W), float(horizon)]]),
        cam_height=camera_height, height_range=(camera_height / 10, camera_height * 10),
        max_range=4 * ref_depth, min_depth=1e-3 * ref_depth, max_depth=100 * ref_depth)
    if not ok:
        return None
    return s0 * camera_height / float(plane[3])


def to_depth(pred: np.ndarray, output_type: str = 'depth') -> np.ndarray:
    """Prediction -> depth (float64, 0 = invalid): ``1 / p`` for ``'disparity'``."""
    p = np.asarray(pred, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f'the estimator returned shape {p.shape}; expected (H, W)')
    ok = np.isfinite(p) & (p > 0)
    if output_type == 'disparity':
        return np.where(ok, 1.0 / np.where(ok, p, 1.0), 0.0)
    if output_type != 'depth':
        raise ValueError(f'output_type must be "depth" or "disparity", got {output_type!r}')
    return np.where(ok, p, 0.0)


def write_depth_png(path: str, depth: np.ndarray) -> None:
    """Write ``depth`` (metres) as a KITTI depth PNG (:func:`encode_depth_png`), atomically
    (:func:`~mmdet3d_skd.datasets.kitti_format.atomic_write_bytes`)."""
    import cv2
    ok, buf = cv2.imencode('.png', encode_depth_png(depth))
    if not ok:
        raise RuntimeError(f'cannot encode the depth map of {path} as PNG')
    atomic_write_bytes(path, buf.tobytes())


# --------------------------------------------------------------------------- data set
@dataclass
class DepthJob:
    """One folder of images -> one folder of depth maps (``calib_dir``: KITTI calib per image),
    or an explicit list ``items`` of ``(image, depth map file, cam2img or None)`` (images in
    any folders, e.g. those of an info file, :func:`info_jobs`)."""
    image_dir: str
    out_dir: str
    calib_dir: Optional[str] = None
    items: Optional[List[Tuple[str, str, Optional[np.ndarray]]]] = None


@dataclass
class DepthStats:
    written: int = 0
    skipped: int = 0
    ground_fallback: List[str] = field(default_factory=list)
    scales: List[float] = field(default_factory=list)


def kitti_jobs(root: str, splits: Sequence[str] = ('training', 'testing')) -> List[DepthJob]:
    """``<root>/<split>/image_2 -> <root>/<split>/depth_2`` (calib from ``<split>/calib``) for
    each split present; FileNotFoundError if none (or ``root``) exists."""
    if not osp.isdir(root):
        raise FileNotFoundError(f'--root {root}: no such folder')
    jobs = []
    for split in splits:
        img = osp.join(root, split, 'image_2')
        if osp.isdir(img):
            calib = osp.join(root, split, 'calib')
            jobs.append(DepthJob(img, osp.join(root, split, 'depth_2'),
                                 calib if osp.isdir(calib) else None))
    if not jobs:
        raise FileNotFoundError(f'--root {root}: none of ' +
                                ', '.join(osp.join(root, s, 'image_2') for s in splits) +
                                ' exists (expected the KITTI layout <root>/training/image_2)')
    return jobs


def info_jobs(info_files: Sequence[str], image_root: str, out_dir: str) -> List[DepthJob]:
    """One job per mmdet3d v2 info file (e.g. ``tools/convert_coco.py``'s): each entry's
    ``images.CAM2.img_path`` (under ``image_root``) -> ``out_dir/<depth_path>`` (default: the
    image path with a ``.png`` extension), with the entry's ``cam2img``."""
    import pickle
    jobs = []
    for path in info_files:
        if not osp.isfile(path):
            raise FileNotFoundError(f'--info {path}: no such file')
        with open(path, 'rb') as f:
            infos = pickle.load(f)
        if not isinstance(infos, dict) or 'data_list' not in infos:
            raise ValueError(f'--info {path}: not an mmdet3d v2 info file (no data_list)')
        items = []
        for n, info in enumerate(infos['data_list']):
            cam = info.get('images', {}).get('CAM2', {})
            if 'img_path' not in cam or 'cam2img' not in cam:
                raise ValueError(f'--info {path}: entry {n} has no images.CAM2 img_path and '
                                 'cam2img')
            rel = cam.get('depth_path') or osp.splitext(cam['img_path'])[0] + '.png'
            items.append((osp.join(image_root, cam['img_path']), osp.join(out_dir, rel),
                          np.asarray(cam['cam2img'], dtype=np.float64)))
        jobs.append(DepthJob(image_root, out_dir, items=items))
    return jobs


def list_images(image_dir: str) -> List[str]:
    if not osp.isdir(image_dir):
        raise FileNotFoundError(f'image folder {image_dir} not found')
    files = sorted(f for f in glob.glob(osp.join(image_dir, '*'))
                   if f.lower().endswith(IMAGE_EXTS) and not osp.basename(f).startswith('.'))
    if not files:
        raise FileNotFoundError(f'image folder {image_dir} holds no .png/.jpg image')
    return files


def read_image_rgb(path: str) -> np.ndarray:
    import cv2
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f'{path}: cannot read the image')
    return np.ascontiguousarray(img[..., ::-1])


def remove_stale_temporaries(out_dir: str) -> int:
    """Delete the hidden ``.<name>.png.*.tmp`` files a killed run may have left."""
    stale = glob.glob(osp.join(out_dir, '.*.png.*.tmp'))
    for f in stale:
        os.remove(f)
    return len(stale)


def resolve_modes(estimator, output_type: str = 'auto',
                  scale_mode: str = 'auto') -> Tuple[str, str]:
    """``'auto'`` -> what the estimator declares (:class:`HFDepthEstimator` knows the common
    architectures): relative models get ``disparity``/``ground``, metric ones ``depth``/``none``;
    an unknown model or a callable gets ``depth``/``none`` (callables return metres)."""
    declared_type = getattr(estimator, 'output_type', None)
    metric = getattr(estimator, 'metric', None)
    if output_type == 'auto':
        output_type = declared_type or 'depth'
    if scale_mode == 'auto':
        scale_mode = 'ground' if metric is False else 'none'
        if isinstance(estimator, HFDepthEstimator) and metric is None:
            logger.warning('model type %r: cannot tell whether it predicts metres; assuming '
                           'metric depth (pass --scale-mode/--output-type to override)',
                           estimator.model_type)
    elif scale_mode == 'none' and metric is False:
        logger.warning('model type %r predicts relative depth but --scale-mode none: the maps '
                       'will not be in metres', getattr(estimator, 'model_type', '?'))
    return output_type, scale_mode


class DepthMapWriter:
    """Runs an estimator over images and writes KITTI depth PNGs (see the module docstring).

    Args:
        estimator: callable ``f(image_rgb, cam2img) -> (H, W)``.
        output_type: ``'depth'`` or ``'disparity'`` (resolved, see :func:`resolve_modes`).
        scale_mode: ``'none'``, ``'fixed'`` (times ``scale``) or ``'ground'``.
        intrinsics: one projection for every image (else each image's KITTI calib is read).
    """

    def __init__(self, estimator: DepthFn, output_type: str = 'depth', scale_mode: str = 'none',
                 scale: float = 1.0, camera_height: float = 1.65,
                 intrinsics: Optional[np.ndarray] = None, overwrite: bool = False,
                 progress: bool = True):
        if scale_mode not in ('none', 'fixed', 'ground'):
            raise ValueError(f'scale_mode must be none, fixed or ground, got {scale_mode!r}')
        if output_type not in ('depth', 'disparity'):
            raise ValueError(f'output_type must be depth or disparity, got {output_type!r}')
        if scale_mode == 'fixed' and not (np.isfinite(scale) and scale > 0):
            raise ValueError(f'--scale must be a positive number, got {scale}')
        if not camera_height > 0:
            raise ValueError(f'--camera-height must be positive, got {camera_height}')
        self.estimator = estimator
        self.output_type = output_type
        self.scale_mode = scale_mode
        self.scale = float(scale)
        self.camera_height = float(camera_height)
        self.intrinsics = intrinsics
        self.overwrite = overwrite
        self.progress = progress
        self.stats = DepthStats()

    def _cam2img(self, image: str, job: DepthJob,
                 cam2img: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
        if self.intrinsics is not None:
            return np.asarray(self.intrinsics, dtype=np.float64)
        if cam2img is not None:
            return cam2img
        if job.calib_dir is None:
            if self.scale_mode == 'ground':
                raise ValueError(f'--scale-mode ground needs intrinsics for {image}: no calib '
                                 'folder (pass --calib-dir or --intrinsics)')
            return None
        calib = osp.join(job.calib_dir, osp.splitext(osp.basename(image))[0] + '.txt')
        if not osp.isfile(calib):
            raise FileNotFoundError(f'calib file {calib} of image {image} not found')
        return read_calib(calib)['P2']

    def predict(self, image: str, job: DepthJob, scale: Optional[float] = None,
                cam2img: Optional[np.ndarray] = None
                ) -> Tuple[Optional[np.ndarray], Optional[float]]:
        """Depth (metres) of one image and the scale used; ``(None, None)`` when the ground
        scale is needed but no plane was found (and no ``scale`` was given)."""
        rgb = read_image_rgb(image)
        cam2img = self._cam2img(image, job, cam2img)
        pred = self.estimator(rgb, cam2img)
        pred = np.asarray(pred)
        if pred.shape != rgb.shape[:2]:
            raise ValueError(f'{image}: the estimator returned shape {pred.shape}, the image is '
                             f'{rgb.shape[:2]}')
        depth = to_depth(pred, self.output_type)
        if self.scale_mode == 'fixed':
            scale = self.scale
        elif self.scale_mode == 'ground' and scale is None:
            scale = ground_scale(depth, cam2img, self.camera_height)
            if scale is None:
                return None, None
        elif self.scale_mode == 'none':
            scale = 1.0
        return depth * scale, scale

    def run(self, jobs: Sequence[DepthJob]) -> DepthStats:
        from tqdm import tqdm
        deferred: List[Tuple[str, DepthJob, str, Optional[np.ndarray]]] = []
        for job in jobs:
            if job.items is None:
                items = [(image,
                          osp.join(job.out_dir, osp.splitext(osp.basename(image))[0] + '.png'),
                          None) for image in list_images(job.image_dir)]
            else:
                items = job.items
            for folder in sorted({osp.dirname(out) for _, out, _ in items} | {job.out_dir}):
                os.makedirs(folder, exist_ok=True)
                removed = remove_stale_temporaries(folder)
                if removed:
                    logger.info('%s: removed %d temporaries of an interrupted run', folder,
                                removed)
            for image, out, cam2img in tqdm(items, desc=osp.relpath(job.out_dir), unit='img',
                                            disable=not self.progress, file=sys.stderr):
                if osp.exists(out) and not self.overwrite:
                    self.stats.skipped += 1
                    continue
                if not osp.isfile(image):
                    raise FileNotFoundError(f'image {image} not found')
                depth, scale = self.predict(image, job, cam2img=cam2img)
                if depth is None:
                    deferred.append((image, job, out, cam2img))
                    continue
                if self.scale_mode == 'ground':
                    self.stats.scales.append(scale)
                write_depth_png(out, depth)
                self.stats.written += 1
        if deferred:
            if not self.stats.scales:
                raise RuntimeError(
                    f'--scale-mode ground: no ground plane found in any of the {len(deferred)} '
                    'images (too few valid depth pixels below the horizon, or no flat ground); '
                    'use --scale-mode fixed --scale S')
            median = statistics.median(self.stats.scales)
            logger.warning('no ground plane in %d image(s); they use the median scale %.4g of '
                           'the others: %s', len(deferred), median,
                           ', '.join(osp.basename(d[0]) for d in deferred[:10]))
            for image, job, out, cam2img in deferred:
                depth, _ = self.predict(image, job, scale=median, cam2img=cam2img)
                write_depth_png(out, depth)
                self.stats.written += 1
                self.stats.ground_fallback.append(image)
        return self.stats


def build_estimator(model: Optional[str] = None, estimator: Optional[str] = None,
                    device: str = 'cpu') -> DepthFn:
    """``model`` (local transformers folder) or ``estimator`` (``module:function``)."""
    if (model is None) == (estimator is None):
        raise ValueError('give exactly one of --model (a local transformers folder) and '
                         '--estimator (module:function)')
    if model is not None:
        return HFDepthEstimator(model, device=device)
    return load_callable(estimator)


__all__ = ['load_callable', 'HFDepthEstimator', 'ground_scale', 'to_depth', 'write_depth_png',
           'DepthJob', 'DepthStats', 'kitti_jobs', 'info_jobs', 'list_images', 'resolve_modes',
           'DepthMapWriter', 'build_estimator', 'KNOWN_MODELS']
