"""Convert COCO-style 2D boxes + camera intrinsics to info files for weak training.

    python tools/convert_coco.py --train ann/train.json --val ann/val.json \\
        --image-root data/mydata/images --out-dir data/mydata \\
        [--intrinsics fx,fy,cx,cy | --intrinsics calib.txt] [--classes car truck] \\
        [--prior "forklift=2.5,2.1,1.2"] [--clip-boxes]

Writes ``<out-dir>/mono3d_infos_{train,val}.pkl`` (2D boxes, labels, ``cam2img``, depth-map
names; no 3D field) and prints the class names and size priors to put in
``configs/skd_wm3d_custom.py``. Intrinsics: each image's ``cam_intrinsic`` (3x3/3x4/4x4) in
the json, else ``--intrinsics`` for all images. A rerun skips the splits already converted from
the same json and options. See docs/own_data.md and ``mmdet3d_skd/datasets/coco_convert.py``.
"""
import argparse
import sys

import mmdet3d_skd  # noqa: F401  registers our modules
from mmdet3d_skd.datasets.coco_convert import CocoConversionError, convert, parse_intrinsics
from mmdet3d_skd.datasets.size_priors import DEFAULT_TABLES, SIZE_PRIORS


def parse_prior(spec: str):
    name, sep, vals = spec.rpartition('=')
    try:
        size = [float(v) for v in vals.split(',')]
    except ValueError:
        size = []
    if not sep or not name or len(size) != 3:
        raise argparse.ArgumentTypeError(f'--prior {spec!r}: expected NAME=l,h,w (metres)')
    return name, size


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--train', help='COCO json of the training split')
    p.add_argument('--val', help='COCO json of the validation split')
    p.add_argument('--image-root', required=True,
                   help='folder the json file_names are relative to')
    p.add_argument('--out-dir', required=True, help='where the info files go')
    p.add_argument('--intrinsics', help='fx,fy,cx,cy, a KITTI calib txt or a 3x3/3x4/4x4 '
                   'matrix file, for images without "cam_intrinsic"')
    p.add_argument('--classes', nargs='+', help='classes to keep, in this order (default: '
                   'every category of the jsons)')
    p.add_argument('--prior', action='append', type=parse_prior, default=[],
                   metavar='NAME=l,h,w', help='size prior of a class (overrides the table)')
    p.add_argument('--prior-tables', nargs='+', default=list(DEFAULT_TABLES),
                   choices=sorted(SIZE_PRIORS), help='size-prior tables, searched in order')
    p.add_argument('--clip-boxes', action='store_true',
                   help='clip boxes that cross the image border (default: an error)')
    p.add_argument('--overwrite', action='store_true', help='redo up-to-date splits too')
    args = p.parse_args(argv)
    if not args.train and not args.val:
        p.error('give --train and/or --val')
    return args


def main(argv=None):
    args = parse_args(argv)
    splits = {k: v for k, v in (('train', args.train), ('val', args.val)) if v}
    try:
        intrinsics = parse_intrinsics(args.intrinsics) if args.intrinsics else None
        results = convert(splits, args.image_root, args.out_dir, intrinsics=intrinsics,
                          classes=args.classes, priors=dict(args.prior),
                          prior_tables=args.prior_tables, clip_boxes=args.clip_boxes,
                          overwrite=args.overwrite)
    except CocoConversionError as e:
        sys.exit(f'convert_coco.py: error: {e}')
    meta = None
    for split, r in results.items():
        if r['skipped']:
            print(f'{split}: {r["file"]} is up to date (same json and options), kept')
            continue
        print(f'{split}: {r["file"]}: {r["images"]} images, {r["instances"]} boxes '
              f'({", ".join(f"{k} {v}" for k, v in r["per_class"].items())}); '
              f'{r["crowd_skipped"]} crowd and {r["other_classes_dropped"]} other-class boxes '
              'left out')
    import pickle
    with open(next(iter(results.values()))['file'], 'rb') as f:
        meta = pickle.load(f)['metainfo']
    print('\nfor configs/skd_wm3d_custom.py:')
    print(f'class_names = {meta["classes"]}')
    print(f'dims_prior = {meta["dims_prior"]}  # (l, h, w) m: '
          f'{", ".join(f"{k} from {v}" for k, v in meta["dims_prior_source"].items())}')
    return results


if __name__ == '__main__':
    main()
