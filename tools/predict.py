"""Detect 3D boxes in a folder of images with their intrinsics: KITTI label files, one JSON and
pictures. Runs the student (the image alone, no depth map)::

    python tools/predict.py --images my_images/ --intrinsics 721.5,721.5,609.6,172.9 \\
        --config configs/skd_wm3d_custom.py --checkpoint work_dirs/custom/iter_1000.pth \\
        --out-dir predictions/

Intrinsics: ``--intrinsics`` (``fx,fy,cx,cy``, a KITTI calib txt or a 3x3/3x4/4x4 matrix file)
for every image, or ``--calib-dir`` (one such file per image, ``<image stem>.txt``), or
``--info`` (an info file of ``tools/convert_coco.py``: its images and their ``cam2img``, with
``--image-root``). Writes ``<out-dir>/labels/<stem>.txt`` (KITTI result lines: ``type -1 -1
alpha x1 y1 x2 y2 h w l x y z ry score``, camera frame, the 2D box the projected 3D box),
``<out-dir>/predictions.json`` and ``<out-dir>/pictures/<stem>.png`` (boxes on the image and a
bird's-eye view; ``--no-pictures`` to skip). See docs/own_data.md.
"""
import argparse
import json
import os
import os.path as osp
import pickle
import sys

import numpy as np
from mmengine.config import Config, DictAction
from mmengine.dataset import Compose

import mmdet3d_skd  # noqa: F401  registers our modules
from mmdet3d_skd.datasets.coco_convert import (CocoConversionError, as_cam2img,
                                               check_principal_point, image_size, parse_intrinsics)
from mmdet3d_skd.datasets.kitti_format import atomic_write_text
from mmdet3d_skd.inference import detections, draw, kitti_label_lines, predict
from mmdet3d_skd.offline.depth_estimators import list_images
from mmdet3d_skd.visualization import SKDLocalVisualizer


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--images', help='a folder of .png/.jpg images')
    src.add_argument('--info', help='an info file of tools/convert_coco.py (with --image-root)')
    p.add_argument('--image-root', help='folder the --info image paths are relative to')
    cam = p.add_mutually_exclusive_group()
    cam.add_argument('--intrinsics', help='fx,fy,cx,cy, a KITTI calib txt or a matrix file, '
                     'for every image')
    cam.add_argument('--calib-dir', help='one KITTI calib txt / matrix file per image, '
                     '<image stem>.txt')
    p.add_argument('--config', required=True, help='model config')
    p.add_argument('--checkpoint', required=True, help='checkpoint file')
    p.add_argument('--out-dir', required=True, help='output folder')
    p.add_argument('--score-thr', type=float, default=0.3,
                   help='keep detections above this score (labels, json, pictures)')
    p.add_argument('--no-pictures', action='store_true', help='labels and json only')
    p.add_argument('--bev-range', type=float, default=60.0,
                   help="metres shown forward in the bird's-eye view")
    p.add_argument('--device', default='cpu', help='torch device, e.g. cpu or cuda:0')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config settings, key=value')
    args = p.parse_args(argv)
    if args.images and not (args.intrinsics or args.calib_dir):
        p.error('--images needs --intrinsics or --calib-dir')
    if args.info and not args.image_root:
        p.error('--info needs --image-root')
    return args


def jobs(args):
    """``[(image path, name without extension, cam2img 4x4, (width, height))]``."""
    out = []
    if args.info:
        with open(args.info, 'rb') as f:
            infos = pickle.load(f)['data_list']
        for info in infos:
            cam = info['images']['CAM2']
            path = osp.join(args.image_root, cam['img_path'])
            where = f'{args.info}: {cam["img_path"]}'
            size = image_size(path, where)
            out.append((path, osp.splitext(cam['img_path'])[0],
                        as_cam2img(cam['cam2img'], where), size))
        return out
    shared = None
    if args.intrinsics:
        shared = as_cam2img(parse_intrinsics(args.intrinsics), f'--intrinsics {args.intrinsics}')
    for path in list_images(args.images):
        stem = osp.splitext(osp.basename(path))[0]
        if shared is not None:
            P = shared
        else:
            calib = osp.join(args.calib_dir, stem + '.txt')
            P = as_cam2img(parse_intrinsics(calib), calib)
        size = image_size(path, path)
        check_principal_point(P, size[0], size[1], path)
        out.append((path, stem, P, size))
    return out


def main(argv=None):
    args = parse_args(argv)
    for what, path in (('--config', args.config), ('--checkpoint', args.checkpoint)):
        if not osp.isfile(path):
            sys.exit(f'predict.py: error: {what} {path} not found')
    try:
        todo = jobs(args)
    except (CocoConversionError, FileNotFoundError, ValueError) as e:
        sys.exit(f'predict.py: error: {e}')
    from tqdm import tqdm

    from mmdet3d.apis import init_model
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = init_model(cfg, args.checkpoint, device=args.device)
    pipeline = Compose(model.cfg.test_dataloader.dataset.pipeline)
    classes = list(model.dataset_meta['classes'])
    vis = None if args.no_pictures else SKDLocalVisualizer(
        name=f'skd_predict_{os.getpid()}', bev_range=args.bev_range)
    records = []
    for path, name, P, (width, height) in tqdm(todo, desc='predict', unit='img',
                                               disable=args.no_progress, file=sys.stderr):
        result = predict(model, model.cfg, path, P, pipeline=pipeline)
        dets = detections(result, classes, P, width, height, args.score_thr)
        label_file = osp.join(args.out_dir, 'labels', name + '.txt')
        os.makedirs(osp.dirname(label_file), exist_ok=True)
        lines = kitti_label_lines(dets)
        atomic_write_text(label_file, '\n'.join(lines) + ('\n' if lines else ''))
        if vis is not None:
            pic = osp.join(args.out_dir, 'pictures', name + '.png')
            os.makedirs(osp.dirname(pic), exist_ok=True)
            draw(result, path, pic, model.dataset_meta, args.score_thr, vis=vis)
        records.append(dict(image=path, width=width, height=height,
                            cam2img=np.asarray(P).tolist(), detections=dets))
    out_json = osp.join(args.out_dir, 'predictions.json')
    atomic_write_text(out_json, json.dumps(dict(classes=classes, score_thr=args.score_thr,
                                                images=records), indent=1))
    n = sum(len(r['detections']) for r in records)
    print(f'{len(records)} images, {n} detections above {args.score_thr}: labels in '
          f'{osp.join(args.out_dir, "labels")}, {out_json}' +
          ('' if args.no_pictures else f', pictures in {osp.join(args.out_dir, "pictures")}'))
    return records


if __name__ == '__main__':
    main()
