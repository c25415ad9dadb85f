"""Detect 3D boxes in one image and draw them: the image with the projected boxes, and a
bird's-eye view beside it (one PNG). Runs the student (the image alone, no depth map)::

    python tools/demo.py demo/000008.png --calib demo/000008.txt \\
        --config configs/skd_wm3d_kitti.py --checkpoint work_dirs/skd_wm3d_kitti/epoch_72.pth \\
        --out demo_000008.png --score-thr 0.3 --device cpu

``--calib``: a KITTI calib txt (its P2) or a text file with a row-major 3x3/3x4/4x4 matrix.
The test pipeline of the config is used as it is (its ``DepthAffineResize`` also rescales
``cam2img``); the boxes come out in the camera frame and are drawn with the original image's
matrix (:class:`mmdet3d_skd.visualization.SKDLocalVisualizer`). The detections are printed
(class, score, x y z, l h w, yaw). See docs/demo.md; a folder of images: tools/predict.py.
"""
import argparse
import os.path as osp
import sys

from mmengine.config import Config, DictAction

import mmdet3d_skd  # noqa: F401  registers our modules
from mmdet3d_skd.datasets.kitti_format import read_intrinsics
# the functions live in the package, shared with tools/predict.py
from mmdet3d_skd.inference import build_input, draw, format_detections, predict  # noqa: F401


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('image', help='image file')
    p.add_argument('--calib', required=True,
                   help='KITTI calib txt (P2) or a 3x3/3x4/4x4 matrix text file')
    p.add_argument('--config', required=True, help='model config')
    p.add_argument('--checkpoint', required=True, help='checkpoint file')
    p.add_argument('--out', required=True, help='output PNG')
    p.add_argument('--score-thr', type=float, default=0.3, help='draw boxes above this score')
    p.add_argument('--device', default='cpu', help='torch device, e.g. cpu or cuda:0')
    p.add_argument('--bev-range', type=float, default=60.0,
                   help='metres shown forward in the bird\'s-eye view')
    p.add_argument('--no-bev', action='store_true', help='the camera view only')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config settings, key=value')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    for what, path in (('image', args.image), ('--calib', args.calib),
                       ('--config', args.config), ('--checkpoint', args.checkpoint)):
        if not osp.isfile(path):
            sys.exit(f'demo.py: error: {what} {path} not found')
    from mmdet3d.apis import init_model
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    try:
        cam2img = read_intrinsics(args.calib)
    except ValueError as e:
        sys.exit(f'demo.py: error: {e}')
    model = init_model(cfg, args.checkpoint, device=args.device)
    result = predict(model, model.cfg, args.image, cam2img)
    draw(result, args.image, args.out, model.dataset_meta, args.score_thr,
         bev=not args.no_bev, bev_range=args.bev_range)
    classes = model.dataset_meta.get('classes', ())
    print(format_detections(result, classes, args.score_thr))
    print(f'picture written to {args.out}')
    return result


if __name__ == '__main__':
    main()
