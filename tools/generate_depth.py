"""Write a depth map per image (``depth_2/*.png``: uint16, metres x 256, 0 = invalid).

KITTI layout (``<root>/training/image_2 -> <root>/training/depth_2``, ``testing/`` too if
present; intrinsics from ``<split>/calib/*.txt``, P2)::

    python tools/generate_depth.py --root data/kitti \\
        --model checkpoints/Depth-Anything-V2-Metric-Outdoor-Small-hf

Any folder of images, a user's estimator ``f(image_rgb HxWx3 uint8, cam2img 3x3/3x4 or None)
-> HxW float metres``::

    python tools/generate_depth.py --image-dir imgs --out-dir depth --intrinsics K.txt \\
        --estimator mypkg.depth:estimate

The images of info files (e.g. ``tools/convert_coco.py``'s, images in any folders, each with its
own ``cam2img``; maps go to ``<out-dir>/<depth_path>``)::

    python tools/generate_depth.py --info data/my/mono3d_infos_train.pkl \
        data/my/mono3d_infos_val.pkl --image-root data/my/images --out-dir data/my/depth \
        --model checkpoints/Depth-Anything-V2-Metric-Outdoor-Small-hf

A relative (or disparity) model is brought to metres with ``--scale-mode fixed --scale S`` or
``--scale-mode ground`` (camera height over the fitted ground plane, ``--camera-height``).
Resumable: existing maps are skipped unless ``--overwrite``. See docs/depth_maps.md.
"""
import argparse
import logging
import sys

from mmdet3d_skd.datasets.kitti_format import read_intrinsics
from mmdet3d_skd.offline.depth_estimators import (DepthJob, DepthMapWriter, build_estimator,
                                                  info_jobs, kitti_jobs, resolve_modes)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--root', help='KITTI-layout data root (<root>/training/image_2)')
    src.add_argument('--image-dir', help='a folder of images (with --out-dir)')
    src.add_argument('--info', nargs='+', help='mmdet3d v2 info file(s): their images and '
                     'cam2img (with --image-root and --out-dir)')
    p.add_argument('--image-root', help='folder the --info image paths are relative to')
    p.add_argument('--out-dir', help='output folder for --image-dir / --info')
    p.add_argument('--calib-dir', help='KITTI calib txt per image (same name) for --image-dir')
    p.add_argument('--intrinsics', help='one KITTI calib txt or 3x3/3x4/4x4 matrix file used '
                   'for every image (overrides the calib folder)')
    p.add_argument('--splits', nargs='+', default=['training', 'testing'],
                   help='splits of --root to process (those present)')
    est = p.add_mutually_exclusive_group(required=True)
    est.add_argument('--model', help='local folder of a transformers depth-estimation model')
    est.add_argument('--estimator', help='module:function or file.py:function')
    p.add_argument('--output-type', choices=['auto', 'depth', 'disparity'], default='auto',
                   help='what the estimator predicts (auto: known models say, else depth)')
    p.add_argument('--scale-mode', choices=['auto', 'none', 'fixed', 'ground'], default='auto',
                   help='metric scale (auto: none for metric models, ground for relative ones)')
    p.add_argument('--scale', type=float, default=1.0, help='factor for --scale-mode fixed')
    p.add_argument('--camera-height', type=float, default=1.65,
                   help='camera height over the ground in metres (--scale-mode ground)')
    p.add_argument('--device', default='cpu', help='torch device of --model')
    p.add_argument('--overwrite', action='store_true', help='redo existing depth maps')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    args = p.parse_args(argv)
    if args.image_dir and not args.out_dir:
        p.error('--image-dir needs --out-dir')
    if args.info and not (args.out_dir and args.image_root):
        p.error('--info needs --image-root and --out-dir')
    if args.root and (args.out_dir or args.calib_dir):
        p.error('--out-dir/--calib-dir go with --image-dir; --root uses the KITTI layout')
    return args


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s')
    try:
        if args.root:
            jobs = kitti_jobs(args.root, args.splits)
        elif args.info:
            jobs = info_jobs(args.info, args.image_root, args.out_dir)
        else:
            jobs = [DepthJob(args.image_dir, args.out_dir, args.calib_dir)]
        intrinsics = read_intrinsics(args.intrinsics) if args.intrinsics else None
        estimator = build_estimator(args.model, args.estimator, args.device)
        output_type, scale_mode = resolve_modes(estimator, args.output_type, args.scale_mode)
        logging.info('output type: %s, scale mode: %s', output_type, scale_mode)
        writer = DepthMapWriter(estimator, output_type, scale_mode, scale=args.scale,
                                camera_height=args.camera_height, intrinsics=intrinsics,
                                overwrite=args.overwrite, progress=not args.no_progress)
        stats = writer.run(jobs)
    except (FileNotFoundError, ValueError, RuntimeError, ImportError) as e:
        sys.exit(f'generate_depth.py: error: {e}')
    msg = f'{stats.written} depth map(s) written, {stats.skipped} existing skipped'
    if stats.scales:
        msg += (f'; ground scale min/median/max {min(stats.scales):.4g}/'
                f'{sorted(stats.scales)[len(stats.scales) // 2]:.4g}/{max(stats.scales):.4g}')
    if stats.ground_fallback:
        msg += f'; {len(stats.ground_fallback)} without a ground plane used the median scale'
    print(msg)
    return stats


if __name__ == '__main__':
    main()
