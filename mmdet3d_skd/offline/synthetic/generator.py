"""Frames, labels and the on-disk KITTI-layout data set of the synthetic world.

Frame ``i`` depends only on ``(seed, i, WorldConfig)``: its random stream is
``np.random.default_rng([seed, i])``, so any subset of frames, in any order, on any number of
workers, gives the same files.

Label rules (KITTI-like, every pixel count from the renderer, see ``render.py``):

- 2D box: ``(u_min, v_min, u_max, v_max)`` of the object's visible pixel centres (KITTI's
  integer pixel-centre convention, ``x2 <= W - 1``), as an annotator boxes what is visible;
- truncated = ``1 - n_alone_in / n_alone``: the share of the object's un-occluded silhouette
  that falls outside the image;
- visible fraction ``f = n_visible / n_alone_in``; occluded = 0 if ``f >= 0.9``, 1 if
  ``f >= 0.5``, else 2 (KITTI's "fully visible / partly / largely occluded"; 3 unused);
- labelled when the visible box is at least ``min_label_height`` (15) px high,
  ``f >= min_visible_frac`` (0.1) and truncated ``<= max_label_truncation`` (0.8); otherwise
  a ``DontCare`` line with the visible box when more than ``min_dontcare_pixels`` (20) pixels
  are visible, else nothing. Clutter (buildings, poles, trees, crates) is never labelled.
"""
import glob
import json
import math
import os
import os.path as osp
import shutil
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from ...datasets import kitti_format
from ...datasets.kitti_format import encode_depth_png
from . import kitti_io
from .depth_noise import apply_depth_noise
from .render import RenderResult, render_scene
from .world import GENERATOR_VERSION, Scene, WorldConfig, sample_scene

SUBDIRS = ('image_2', 'calib', 'label_2', 'depth_2', 'synth_meta')
WORLD_FILE = 'world.json'


class WorldMismatchError(RuntimeError):
    """The output folder holds a different world (or foreign data)."""


@dataclass
class Annotation:
    """One label line: ``name`` a class or ``'DontCare'``; ``obj`` the scene object index."""
    name: str
    obj: int
    truncated: float
    occluded: int
    alpha: float
    bbox: Tuple[float, float, float, float]
    dims: Tuple[float, float, float]   # l, h, w
    loc: Tuple[float, float, float]
    ry: float
    num_pixels: int
    visible_frac: float

    def line(self) -> str:
        if self.name == 'DontCare':
            return kitti_format.dontcare_line(self.bbox)
        return kitti_format.label_line(self.name, self.truncated, self.occluded, self.alpha,
                                       self.bbox, self.dims, self.loc, self.ry)


@dataclass
class Frame:
    idx: int
    scene: Scene
    render: RenderResult
    annotations: List[Annotation]
    depth_map: np.ndarray       # what depth_2 stores (noisy, or exact with exact=True)
    depth_aux: dict


def occlusion_level(frac: float, cfg: WorldConfig) -> int:
    t0, t1 = cfg.occlusion_visible_frac
    return 0 if frac >= t0 else (1 if frac >= t1 else 2)


def wrap_alpha(ry: float, x: float, z: float) -> float:
    """``alpha = ry - atan2(x, z)`` wrapped to ``[-pi, pi)``."""
    a = ry - math.atan2(x, z)
    return (a + math.pi) % (2 * math.pi) - math.pi


def compute_annotations(scene: Scene, render: RenderResult,
                        cfg: WorldConfig) -> List[Annotation]:
    """Label lines of a rendered scene (module doc); labelled objects first, DontCare last."""
    labels, dontcare = [], []
    for i, obj in enumerate(scene.objects):
        if obj.name is None:
            continue
        nvis = int(render.n_visible[i])
        if nvis == 0:
            continue
        n_in, n_all = int(render.n_alone_in[i]), int(render.n_alone[i])
        trunc = 1.0 - n_in / n_all
        frac = nvis / n_in
        bbox = tuple(float(v) for v in render.vis_bbox[i])
        box_h = bbox[3] - bbox[1]
        x, y, z = (float(v) for v in obj.loc)
        ann = Annotation(
            name=obj.name, obj=i, truncated=round(trunc, 2),
            occluded=occlusion_level(frac, cfg), alpha=round(wrap_alpha(obj.ry, x, z), 2),
            bbox=bbox, dims=tuple(float(v) for v in obj.dims), loc=(x, y, z), ry=obj.ry,
            num_pixels=nvis, visible_frac=frac)
        if (box_h >= cfg.min_label_height and frac >= cfg.min_visible_frac
                and trunc <= cfg.max_label_truncation):
            labels.append(ann)
        elif nvis > cfg.min_dontcare_pixels:
            ann.name = 'DontCare'
            ann.num_pixels = -1
            dontcare.append(ann)
    return labels + dontcare


def frame_rng(seed: int, idx: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(idx)])


def make_frame(cfg: WorldConfig, seed: int, idx: int) -> Frame:
    """Sample, render and label frame ``idx`` of the world ``(cfg, seed)``."""
    rng = frame_rng(seed, idx)
    scene = sample_scene(cfg, rng)
    render = render_scene(scene, cfg, rng)
    anns = compute_annotations(scene, render, cfg)
    depth_map, aux = apply_depth_noise(render.depth, cfg.depth_noise, scene.depth_scale, rng)
    return Frame(idx, scene, render, anns, depth_map, aux)


# ----------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------
def frame_paths(root: str, idx: int) -> Dict[str, str]:
    name = f'{idx:06d}'
    t = osp.join(root, 'training')
    return dict(image_2=osp.join(t, 'image_2', name + '.png'),
                calib=osp.join(t, 'calib', name + '.txt'),
                label_2=osp.join(t, 'label_2', name + '.txt'),
                depth_2=osp.join(t, 'depth_2', name + '.png'),
                synth_meta=osp.join(t, 'synth_meta', name + '.json'))


def frame_complete(root: str, idx: int) -> bool:
    return all(osp.isfile(p) for p in frame_paths(root, idx).values())


def write_frame(root: str, frame: Frame, cfg: WorldConfig) -> None:
    """Write a frame's five files; the meta file goes last, so it marks a complete frame."""
    paths = frame_paths(root, frame.idx)
    kitti_format.atomic_write_png(paths['image_2'], frame.render.image)
    kitti_format.atomic_write_png(paths['depth_2'], encode_depth_png(frame.depth_map))
    kitti_format.atomic_write_text(paths['calib'], kitti_format.calib_text(cfg.calib()))
    kitti_format.atomic_write_text(paths['label_2'],
                                   ''.join(a.line() + '\n' for a in frame.annotations))
    meta = dict(
        depth_scale=frame.scene.depth_scale,
        exact_depth=cfg.depth_noise.exact,
        camera_height=frame.scene.camera_height,
        image_noise_std=frame.scene.noise_std,
        num_pixels=[a.num_pixels for a in frame.annotations],
        visible_frac=[round(a.visible_frac, 4) for a in frame.annotations],
    )
    kitti_format.atomic_write_text(paths['synth_meta'], json.dumps(meta))


def world_identity(cfg: WorldConfig, seed: int, num_train: int, num_val: int) -> dict:
    # the generator's name in the data sets it wrote (kept when the code moved to offline/)
    ident = dict(generator='mmdet3d_skd.datasets.synthetic', version=GENERATOR_VERSION,
                 seed=int(seed), num_train=int(num_train), num_val=int(num_val),
                 world=cfg.to_dict())
    return json.loads(json.dumps(ident))  # tuples -> lists, as read back from disk


def _diff(a, b, prefix='') -> List[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f'{prefix}{k}.')
        return out
    return [] if a == b else [f'{prefix[:-1]}: on disk {a!r}, asked {b!r}']


def _clear(root: str) -> None:
    """Remove this generator's outputs only (never the whole folder)."""
    for sub in SUBDIRS:
        p = osp.join(root, 'training', sub)
        if osp.isdir(p):
            shutil.rmtree(p)
    for p in ('ImageSets', ):
        if osp.isdir(osp.join(root, p)):
            shutil.rmtree(osp.join(root, p))
    for split in ('train', 'val', 'trainval'):
        p = osp.join(root, f'kitti_infos_{split}.pkl')
        if osp.isfile(p):
            os.unlink(p)
    if osp.isfile(osp.join(root, WORLD_FILE)):
        os.unlink(osp.join(root, WORLD_FILE))


def prepare_folder(root: str, ident: dict, overwrite: bool) -> None:
    """Check (or claim) ``root`` for the world ``ident``.

    Same world on disk: keep it (missing frames get completed). Different world, or a
    ``training/`` folder of unknown origin: :class:`WorldMismatchError` unless ``overwrite``,
    which deletes this generator's outputs (never anything else) first.
    """
    wpath = osp.join(root, WORLD_FILE)
    if osp.isfile(wpath):
        with open(wpath) as f:
            try:
                on_disk = json.load(f)
            except json.JSONDecodeError as e:
                on_disk = {'unreadable': str(e)}
        if on_disk == ident:
            for sub in SUBDIRS:
                os.makedirs(osp.join(root, 'training', sub), exist_ok=True)
            return
        if not overwrite:
            diffs = _diff(on_disk, ident)
            raise WorldMismatchError(
                f'{root} holds a different synthetic world ({wpath}):\n  '
                + '\n  '.join(diffs[:20])
                + '\nUse another output folder, the same parameters (to complete it), or '
                '--overwrite to replace it.')
        _clear(root)
    elif osp.isdir(osp.join(root, 'training')):
        if not overwrite:
            raise WorldMismatchError(
                f'{root}/training exists but {wpath} does not: it is not a synthetic world '
                'written by this tool (real KITTI?). Refusing to write into it; use another '
                'folder, or --overwrite to replace the generated sub-folders '
                f'({", ".join(SUBDIRS)}), ImageSets and the info files.')
        _clear(root)
    os.makedirs(root, exist_ok=True)
    for sub in SUBDIRS:
        os.makedirs(osp.join(root, 'training', sub), exist_ok=True)
    kitti_format.atomic_write_text(wpath, json.dumps(ident, indent=2, sort_keys=True) + '\n')


def remove_temporaries(root: str) -> None:
    """Delete the hidden temporaries (``.<name>.<rand>.tmp``) of writes a kill interrupted."""
    for folder in [root] + [osp.join(root, 'training', sub) for sub in SUBDIRS]:
        for path in glob.glob(osp.join(folder, '.*.tmp')):
            os.unlink(path)


def build_info(root: str, idx: int, cfg: WorldConfig) -> dict:
    """The mmdet3d v2 info entry of a written frame, from its label, calib and meta files."""
    paths = frame_paths(root, idx)
    annos = kitti_io.read_label(paths['label_2'])
    calib = kitti_io.read_calib(paths['calib'])
    with open(paths['synth_meta']) as f:
        meta = json.load(f)
    return kitti_io.frame_info(idx, calib, annos, meta['num_pixels'], cfg.width, cfg.height,
                               depth_name=osp.basename(paths['depth_2']))


def write_splits(root: str, cfg: WorldConfig, num_train: int, num_val: int,
                 progress: bool = False) -> Dict[str, str]:
    """``ImageSets/{train,val,trainval}.txt`` and ``kitti_infos_{train,val,trainval}.pkl``."""
    splits = dict(train=list(range(num_train)),
                  val=list(range(num_train, num_train + num_val)))
    splits['trainval'] = splits['train'] + splits['val']
    os.makedirs(osp.join(root, 'ImageSets'), exist_ok=True)
    infos = {}
    ids = splits['trainval']
    it = ids
    if progress:
        from tqdm import tqdm
        it = tqdm(ids, desc='info files', unit='frame')
    for i in it:
        infos[i] = build_info(root, i, cfg)
    out = {}
    for split, idxs in splits.items():
        kitti_format.atomic_write_text(osp.join(root, 'ImageSets', f'{split}.txt'),
                                       ''.join(f'{i:06d}\n' for i in idxs))
        path = osp.join(root, f'kitti_infos_{split}.pkl')
        kitti_format.atomic_write_pickle(path, kitti_io.info_file([infos[i] for i in idxs]))
        out[split] = path
    return out


_WORKER_STATE: dict = {}


def _worker_init(root, cfg_dict, seed):
    _WORKER_STATE.update(root=root, cfg=WorldConfig.from_dict(cfg_dict), seed=seed)


def _worker_frame(idx: int) -> int:
    s = _WORKER_STATE
    write_frame(s['root'], make_frame(s['cfg'], s['seed'], idx), s['cfg'])
    return idx


def generate(out_dir: str, num_train: int = 3000, num_val: int = 500, seed: int = 0,
             width: Optional[int] = None, height: Optional[int] = None,
             exact_depth: bool = False, overwrite: bool = False, workers: int = 1,
             progress: bool = True, cfg: Optional[WorldConfig] = None) -> dict:
    """Write (or complete) the synthetic KITTI-layout data set in ``out_dir``.

    Frames ``0 .. num_train - 1`` form ``train``, the next ``num_val`` ``val`` (all in
    ``training/``, split by ``ImageSets``). Returns a summary: paths of the info files and
    the numbers of frames written and skipped.
    """
    if num_train < 0 or num_val < 0 or num_train + num_val == 0:
        raise ValueError(f'need at least one frame (num_train={num_train}, num_val={num_val})')
    cfg = WorldConfig() if cfg is None else WorldConfig.from_dict(cfg.to_dict())
    if width is not None:
        cfg.width = int(width)
    if height is not None:
        cfg.height = int(height)
    if exact_depth:
        cfg.depth_noise.exact = True
    if cfg.width < 32 or cfg.height < 16:
        raise ValueError(f'image size {cfg.width}x{cfg.height} is too small')
    ident = world_identity(cfg, seed, num_train, num_val)
    prepare_folder(out_dir, ident, overwrite)
    remove_temporaries(out_dir)
    todo = [i for i in range(num_train + num_val) if not frame_complete(out_dir, i)]
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=num_train + num_val, initial=num_train + num_val - len(todo),
                   desc='synthetic frames', unit='frame')
    try:
        if workers <= 1 or len(todo) <= 1:
            for i in todo:
                write_frame(out_dir, make_frame(cfg, seed, i), cfg)
                if bar is not None:
                    bar.update(1)
        else:
            import multiprocessing as mp
            with mp.get_context('fork').Pool(
                    workers, initializer=_worker_init,
                    initargs=(out_dir, cfg.to_dict(), seed)) as pool:
                for _ in pool.imap_unordered(_worker_frame, todo, chunksize=4):
                    if bar is not None:
                        bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    infos = write_splits(out_dir, cfg, num_train, num_val, progress=progress)
    return dict(out_dir=out_dir, infos=infos, written=len(todo),
                skipped=num_train + num_val - len(todo), world=ident)
