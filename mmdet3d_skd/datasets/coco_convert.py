"""COCO-style 2D boxes + camera intrinsics -> mmdet3d v2 info files for weak training.

A user with images, 2D boxes in a COCO json and a calibrated camera gets info files that
:class:`~mmdet3d_skd.datasets.WeakMono3DDataset` reads (``tools/convert_coco.py`` is the
command line, docs/own_data.md the walk-through). mmdet3d converts only its benchmark data
sets (KITTI, nuScenes, ...) and has no such path, hence this module.

Input json: ``images`` (``id`` int, ``file_name`` relative to the image root, optional
``width``/``height`` and ``cam_intrinsic``: a 3x3, 3x4 or 4x4 projection, as mmdet3d's
nuScenes/KITTI mono3d jsons have), ``categories`` (``id``, ``name``), ``annotations``
(``image_id``, ``category_id``, ``bbox`` ``[x, y, w, h]`` pixels, optional ``iscrowd``).
Images without ``cam_intrinsic`` take the intrinsics given once for all (``intrinsics``).
Any other key (e.g. mmdet3d's ``bbox_cam3d``, ``center2d``) is ignored: nothing 3D is read.

Output entry per image (2D boxes and labels only; no 3D field is written)::

    dict(sample_idx=<image id>,
         images=dict(CAM2=dict(img_path=<file_name>, depth_path=<file_name stem>.png,
                               height=H, width=W, cam2img=<4x4 list>)),
         instances=[dict(bbox=[x1, y1, x2, y2], bbox_label=<class index>), ...])

and ``metainfo``: ``classes``, ``categories`` (name -> index), ``dims_prior`` (l, h, w per
class, :mod:`.size_priors`), ``dims_prior_source``, ``dataset='coco_mono3d'``,
``info_version`` and ``source`` (what the file was made from, see below).

Checks (each a :class:`CocoConversionError`, a ValueError naming the json and the entry):
missing or singular intrinsics, a principal point outside its image or an image whose size
on disk differs from the json's, a class without a size prior, a box of zero area or outside
its image (``clip_boxes=True`` clips boxes that overlap the image instead), duplicate image
ids or file names, an image file that does not exist, unknown image or category ids.

Files are written atomically (a hidden temporary in the same folder, then ``os.replace``): an
interrupted run leaves every earlier output whole. ``metainfo['source']`` records the json's
SHA-1 and the options; a rerun skips a split whose file is up to date and writes the others
(``overwrite=True`` redoes all).
"""
import contextlib
import hashlib
import io
import json
import os
import os.path as osp
import pickle
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .kitti_format import atomic_write_bytes, read_intrinsics
from .size_priors import DEFAULT_TABLES, lookup_size_prior, resolve_size_priors

CONVERTER_VERSION = 1
INFO_VERSION = '1.1'
DATASET_NAME = 'coco_mono3d'
#: Names of the files :func:`convert` writes, per split.
INFO_NAME = 'mono3d_infos_{split}.pkl'
#: Pixels a box may pass the image border by before it counts as outside (rounding).
BORDER_TOL = 1.0


class CocoConversionError(ValueError):
    """Bad input of the converter; the message names the json file and the entry."""


# --------------------------------------------------------------------------- intrinsics
def parse_intrinsics(spec: str) -> np.ndarray:
    """``'fx,fy,cx,cy'`` -> 3x3 K; otherwise a file: a KITTI calib txt (its P2) or a
    3x3/3x4/4x4 matrix text file (:func:`.kitti_format.read_intrinsics`)."""
    parts = spec.replace(' ', '').split(',')
    if len(parts) == 4 and not osp.exists(spec):
        try:
            fx, fy, cx, cy = (float(p) for p in parts)
        except ValueError:
            raise CocoConversionError(f'--intrinsics {spec!r}: expected fx,fy,cx,cy numbers '
                                      'or a calib/matrix file') from None
        return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64)
    try:
        return read_intrinsics(spec)
    except FileNotFoundError:
        raise CocoConversionError(f'--intrinsics {spec!r}: neither fx,fy,cx,cy nor an '
                                  'existing calib/matrix file') from None
    except ValueError as e:
        raise CocoConversionError(f'--intrinsics: {e}') from None


def as_cam2img(value, where: str) -> np.ndarray:
    """A 3x3/3x4/4x4 projection -> 4x4 float64; CocoConversionError (naming ``where``) when it
    is malformed, non-finite or singular (``fx``/``fy`` not positive, ``det(P[:3, :3]) = 0``)."""
    try:
        P = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise CocoConversionError(f'{where}: intrinsics {value!r} are not a matrix of '
                                  'numbers') from None
    if P.ndim != 2 or P.shape[0] not in (3, 4) or P.shape[1] not in (3, 4) or \
            P.shape[1] < P.shape[0]:
        raise CocoConversionError(f'{where}: intrinsics of shape {P.shape}; expected 3x3, 3x4 '
                                  'or 4x4')
    if not np.isfinite(P).all():
        raise CocoConversionError(f'{where}: intrinsics hold a non-finite value')
    K = P[:3, :3]
    scale = max(abs(K[0, 0]), abs(K[1, 1]), 1e-12)
    if K[0, 0] <= 0 or K[1, 1] <= 0 or abs(np.linalg.det(K)) < 1e-9 * scale * scale or \
            P[2, 2] <= 0:
        raise CocoConversionError(
            f'{where}: singular or invalid intrinsics (fx={K[0, 0]:g}, fy={K[1, 1]:g}, '
            f'det={np.linalg.det(K):g}); expected [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] with '
            'fx, fy > 0')
    P4 = np.eye(4)
    P4[:P.shape[0], :P.shape[1]] = P
    return P4


def check_principal_point(P4: np.ndarray, width: int, height: int, where: str) -> None:
    """The principal point must lie inside the image: intrinsics of another image size (a
    resized or cropped image) fail here."""
    cx, cy = P4[0, 2] / P4[2, 2], P4[1, 2] / P4[2, 2]
    if not (0 < cx < width and 0 < cy < height):
        raise CocoConversionError(
            f'{where}: principal point ({cx:.1f}, {cy:.1f}) lies outside the {width}x{height} '
            'image: the intrinsics belong to another image size (scale fx, fy, cx, cy with a '
            'resized image, shift cx, cy with a crop)')


# --------------------------------------------------------------------------- json checks
def _sha1(path: str) -> str:
    h = hashlib.sha1()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def load_coco(path: str) -> dict:
    """The json through mmdet's COCO api wrapper (its indexes), after the checks it lacks:
    the three lists present, integer unique image ids and file names, unique category ids and
    names, annotations pointing at known images and categories."""
    from mmdet.datasets.api_wrappers import COCO
    if not osp.isfile(path):
        raise CocoConversionError(f'{path}: json file not found')
    try:
        with open(path, 'rb') as f:
            data = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise CocoConversionError(f'{path}: not a json file ({e})') from None
    if not isinstance(data, dict):
        raise CocoConversionError(f'{path}: expected a COCO json object, got a '
                                  f'{type(data).__name__}')
    for key in ('images', 'categories', 'annotations'):
        if not isinstance(data.get(key, None), list):
            raise CocoConversionError(f'{path}: no {key!r} list (a COCO json has images, '
                                      'categories and annotations)')
    seen_ids: Dict[int, str] = {}
    seen_files: Dict[str, int] = {}
    for n, img in enumerate(data['images']):
        if not isinstance(img, dict) or 'id' not in img or 'file_name' not in img:
            raise CocoConversionError(f'{path}: images[{n}] lacks "id" or "file_name"')
        iid, name = img['id'], img['file_name']
        if not isinstance(iid, int) or isinstance(iid, bool):
            raise CocoConversionError(f'{path}: images[{n}] ({name!r}): id {iid!r} is not an '
                                      'integer')
        if iid in seen_ids:
            raise CocoConversionError(f'{path}: duplicate image id {iid}: images[{n}] '
                                      f'({name!r}) and {seen_ids[iid]!r}')
        if not isinstance(name, str) or not name or osp.isabs(name) or \
                '..' in name.replace('\\', '/').split('/'):
            raise CocoConversionError(f'{path}: image id {iid}: file_name {name!r} must be a '
                                      'path relative to the image root')
        if name in seen_files:
            raise CocoConversionError(f'{path}: file {name!r} listed twice (image ids '
                                      f'{seen_files[name]} and {iid})')
        seen_ids[iid] = name
        seen_files[name] = iid
    cat_ids, cat_names = set(), set()
    for n, cat in enumerate(data['categories']):
        if not isinstance(cat, dict) or 'id' not in cat or not isinstance(cat.get('name'), str):
            raise CocoConversionError(f'{path}: categories[{n}] lacks "id" or "name"')
        if cat['id'] in cat_ids or cat['name'] in cat_names:
            raise CocoConversionError(f'{path}: duplicate category {cat["id"]} '
                                      f'{cat["name"]!r} (categories[{n}])')
        cat_ids.add(cat['id'])
        cat_names.add(cat['name'])
    for n, ann in enumerate(data['annotations']):
        aid = ann.get('id', n) if isinstance(ann, dict) else n
        if not isinstance(ann, dict) or ann.get('image_id') not in seen_ids:
            raise CocoConversionError(f'{path}: annotation {aid}: image_id '
                                      f'{ann.get("image_id") if isinstance(ann, dict) else None!r}'
                                      ' is not an image of the json')
        if ann.get('category_id') not in cat_ids:
            raise CocoConversionError(f'{path}: annotation {aid} (image {ann["image_id"]}): '
                                      f'category_id {ann.get("category_id")!r} is not a '
                                      'category of the json')
        ann.setdefault('id', n)  # pycocotools indexes annotations by id
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco.createIndex()
    return coco


def image_size(path: str, where: str) -> Tuple[int, int]:
    """``(width, height)`` from the file's header (PIL reads no pixel data)."""
    from PIL import Image, UnidentifiedImageError
    if not osp.isfile(path):
        raise CocoConversionError(f'{where}: image file {path} not found')
    try:
        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except (UnidentifiedImageError, OSError) as e:
        raise CocoConversionError(f'{where}: cannot read image {path} ({e})') from None


def convert_box(bbox, width: int, height: int, clip: bool, where: str) -> List[float]:
    """COCO ``[x, y, w, h]`` -> ``[x1, y1, x2, y2]``, checked against the image."""
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise CocoConversionError(f'{where}: bbox {bbox!r} is not [x, y, w, h]') from None
    if not np.isfinite([x, y, w, h]).all():
        raise CocoConversionError(f'{where}: bbox {bbox!r} has a non-finite value')
    if w <= 0 or h <= 0:
        raise CocoConversionError(f'{where}: bbox {bbox!r} has zero area (w, h must be > 0)')
    x1, y1, x2, y2 = x, y, x + w, y + h
    outside = x1 < -BORDER_TOL or y1 < -BORDER_TOL or x2 > width + BORDER_TOL or \
        y2 > height + BORDER_TOL
    if outside or clip:
        cx1, cy1 = min(max(x1, 0.0), width), min(max(y1, 0.0), height)
        cx2, cy2 = min(max(x2, 0.0), width), min(max(y2, 0.0), height)
        if outside and (not clip or cx2 - cx1 <= 0 or cy2 - cy1 <= 0):
            raise CocoConversionError(
                f'{where}: bbox {bbox!r} (x1 y1 x2 y2 = {x1:g} {y1:g} {x2:g} {y2:g}) lies '
                f'outside the {width}x{height} image' +
                ('' if clip else ' (clip_boxes / --clip-boxes clips boxes that overlap it)'))
        if clip:
            x1, y1, x2, y2 = cx1, cy1, cx2, cy2
    return [x1, y1, x2, y2]


# --------------------------------------------------------------------------- conversion
def class_list(cocos: Sequence[Tuple[str, object]]) -> List[str]:
    """Category names of the jsons in order of first appearance (each json by category id)."""
    names: List[str] = []
    for _, coco in cocos:
        for cat in sorted(coco.dataset['categories'], key=lambda c: c['id']):
            if cat['name'] not in names:
                names.append(cat['name'])
    return names


def convert_split(json_path: str, coco, image_root: str, classes: Sequence[str],
                  priors: Sequence[Sequence[float]], prior_sources: Sequence[str],
                  intrinsics: Optional[np.ndarray] = None, clip_boxes: bool = False,
                  source: Optional[dict] = None) -> Tuple[dict, dict]:
    """One json -> ``(info file dict, summary)`` (see the module docstring)."""
    data = coco.dataset
    cat_name = {c['id']: c['name'] for c in data['categories']}
    label_of = {name: i for i, name in enumerate(classes)}
    default_P = None if intrinsics is None else as_cam2img(intrinsics, '--intrinsics')
    summary = dict(images=0, instances=0, crowd_skipped=0, other_classes_dropped=0,
                   per_class={c: 0 for c in classes})
    data_list = []
    for img in data['images']:
        iid, name = img['id'], img['file_name']
        where = f'{json_path}: image id {iid} ({name!r})'
        width, height = image_size(osp.join(image_root, name), where)
        for key, actual in (('width', width), ('height', height)):
            if key in img and img[key] is not None and int(img[key]) != actual:
                raise CocoConversionError(
                    f'{where}: the json says {key} {img[key]} but the file is '
                    f'{width}x{height}: its intrinsics and boxes are for another image size')
        if img.get('cam_intrinsic', None) is not None:
            P = as_cam2img(img['cam_intrinsic'], where + ' cam_intrinsic')
        elif default_P is not None:
            P = default_P
        else:
            raise CocoConversionError(f'{where}: no intrinsics: the image has no '
                                      '"cam_intrinsic" and none were given for all images '
                                      '(--intrinsics fx,fy,cx,cy or a calib file)')
        check_principal_point(P, width, height, where)
        instances = []
        for ann in coco.imgToAnns.get(iid, []):
            awhere = f'{json_path}: annotation {ann["id"]} of image id {iid} ({name!r})'
            if ann.get('iscrowd', 0):
                summary['crowd_skipped'] += 1
                continue
            cname = cat_name[ann['category_id']]
            if cname not in label_of:
                summary['other_classes_dropped'] += 1
                continue
            if 'bbox' not in ann:
                raise CocoConversionError(f'{awhere}: no "bbox"')
            box = convert_box(ann['bbox'], width, height, clip_boxes, awhere)
            instances.append(dict(bbox=box, bbox_label=label_of[cname]))
            summary['per_class'][cname] += 1
        stem = osp.splitext(name)[0]
        data_list.append(dict(
            sample_idx=iid,
            images=dict(CAM2=dict(img_path=name, depth_path=stem + '.png', height=height,
                                  width=width, cam2img=P.tolist())),
            instances=instances))
        summary['images'] += 1
        summary['instances'] += len(instances)
    metainfo = dict(classes=list(classes), categories={c: i for i, c in enumerate(classes)},
                    dims_prior=[list(p) for p in priors],
                    dims_prior_source=dict(zip(classes, prior_sources)),
                    dataset=DATASET_NAME, info_version=INFO_VERSION, source=source or {})
    return dict(metainfo=metainfo, data_list=data_list), summary


def remove_stale_temporaries(out_dir: str) -> int:
    """Delete the hidden ``.mono3d_infos_*.pkl.*.tmp`` files a killed run may have left."""
    n = 0
    if osp.isdir(out_dir):
        for f in os.listdir(out_dir):
            if f.startswith('.mono3d_infos_') and f.endswith('.tmp'):
                os.remove(osp.join(out_dir, f))
                n += 1
    return n


def _up_to_date(path: str, source: dict) -> bool:
    if not osp.isfile(path):
        return False
    try:
        with open(path, 'rb') as f:
            info = pickle.load(f)
        return info['metainfo'].get('source') == source
    except Exception:  # noqa: BLE001  an unreadable old file is simply redone
        return False


def convert(splits: Mapping[str, str], image_root: str, out_dir: str,
            intrinsics: Optional[np.ndarray] = None, classes: Optional[Sequence[str]] = None,
            priors: Optional[Mapping[str, Sequence[float]]] = None,
            prior_tables: Sequence[str] = DEFAULT_TABLES, clip_boxes: bool = False,
            overwrite: bool = False) -> Dict[str, dict]:
    """Convert each ``{split: json}`` to ``out_dir/mono3d_infos_<split>.pkl``.

    The classes are ``classes`` or every category of the jsons (first json first, by id);
    annotations of other categories are dropped. Size priors: ``priors`` (name -> l, h, w)
    over the tables of :mod:`.size_priors`. Every json is checked before anything is
    written. Returns ``{split: summary}`` (``summary['skipped']`` when up to date).
    """
    if not splits:
        raise CocoConversionError('no json given (train and/or val)')
    cocos = [(split, load_coco(path)) for split, path in splits.items()]
    classes = list(classes) if classes else class_list(cocos)
    if len(set(classes)) != len(classes):
        raise CocoConversionError(f'classes {classes} repeat a name')
    missing = [c for c in classes
               if c not in (priors or {}) and lookup_size_prior(c, prior_tables) is None]
    if missing:
        where = [f'{splits[split]}: category id {cat["id"]} {cat["name"]!r}'
                 for split, coco in cocos for cat in coco.dataset['categories']
                 if cat['name'] in missing]
        raise CocoConversionError(
            f'{"; ".join(where) or missing}: no size prior for class(es) {missing}: not in '
            f'the tables {list(prior_tables)} (mmdet3d_skd/datasets/size_priors.py); give '
            f'their mean size, e.g. --prior "{missing[0]}=4.0,1.5,1.7" (l,h,w metres), or '
            'dims_prior in the config')
    try:
        dims, sources = resolve_size_priors(classes, priors, prior_tables)
    except ValueError as e:
        raise CocoConversionError(f'size priors: {e}') from None
    os.makedirs(out_dir, exist_ok=True)
    remove_stale_temporaries(out_dir)
    opts = dict(image_root=osp.abspath(image_root), classes=classes,
                dims_prior=[list(d) for d in dims], clip_boxes=bool(clip_boxes),
                intrinsics=None if intrinsics is None else np.asarray(intrinsics).tolist(),
                converter=CONVERTER_VERSION)
    results = {}
    for split, coco in cocos:
        path = splits[split]
        out = osp.join(out_dir, INFO_NAME.format(split=split))
        source = dict(opts, json=osp.abspath(path), sha1=_sha1(path))
        if not overwrite and _up_to_date(out, source):
            results[split] = dict(skipped=True, file=out)
            continue
        info, summary = convert_split(path, coco, image_root, classes, dims, sources,
                                      intrinsics, clip_boxes, source)
        atomic_write_bytes(out, pickle.dumps(info, protocol=pickle.HIGHEST_PROTOCOL))
        results[split] = dict(summary, skipped=False, file=out)
    return results


# --------------------------------------------------------------------------- export
def kitti_info_to_coco(info_file: str, out_json: str,
                       classes: Sequence[str] = ('Pedestrian', 'Cyclist', 'Car')) -> dict:
    """A KITTI-layout mmdet3d info file -> a COCO json of its 2D label boxes and P2 only.

    For tests and the benchmark of the converter path: the synthetic world (or KITTI) as a
    user's COCO data set would be. ``file_name`` is the image's name in ``image_2``; each image
    carries ``cam_intrinsic`` (P2, 3x4); labels outside ``classes`` and DontCare are dropped.
    Nothing 3D is written. Returns the json dict.
    """
    with open(info_file, 'rb') as f:
        infos = pickle.load(f)
    cats = infos['metainfo']['categories']  # name -> KITTI class id
    id2name = {v: k for k, v in cats.items()}
    out = dict(images=[], annotations=[],
               categories=[dict(id=i + 1, name=c) for i, c in enumerate(classes)])
    cat_id = {c: i + 1 for i, c in enumerate(classes)}
    for info in infos['data_list']:
        cam = info['images']['CAM2']
        iid = int(info['sample_idx'])
        out['images'].append(dict(
            id=iid, file_name=osp.basename(cam['img_path']), width=int(cam['width']),
            height=int(cam['height']),
            cam_intrinsic=np.asarray(cam['cam2img'], dtype=np.float64)[:3].tolist()))
        for inst in info['instances']:
            name = id2name.get(inst['bbox_label'])
            if name not in cat_id:
                continue
            x1, y1, x2, y2 = (float(v) for v in inst['bbox'])
            out['annotations'].append(dict(
                id=len(out['annotations']) + 1, image_id=iid, category_id=cat_id[name],
                bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1), iscrowd=0))
    os.makedirs(osp.dirname(out_json) or '.', exist_ok=True)
    atomic_write_bytes(out_json, json.dumps(out).encode('utf-8'))
    return out


__all__ = ['CocoConversionError', 'parse_intrinsics', 'as_cam2img', 'check_principal_point',
           'load_coco', 'convert_box', 'convert_split', 'convert', 'kitti_info_to_coco',
           'INFO_NAME', 'CONVERTER_VERSION']
