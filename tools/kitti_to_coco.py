"""Export a KITTI-layout info file's 2D label boxes and P2 as a COCO json (nothing 3D).

The synthetic world (or KITTI) as a user's own COCO data set would be, to run the converter
path end to end and compare it with the KITTI-layout path (docs/own_data.md, benchmark)::

    python tools/kitti_to_coco.py data/synth_kitti/kitti_infos_train.pkl work_dirs/coco/train.json

``file_name`` is the image's name in ``training/image_2``, each image carries its P2 as
``cam_intrinsic``; DontCare and classes outside ``--classes`` are dropped.
"""
import argparse

from mmdet3d_skd.datasets.coco_convert import kitti_info_to_coco


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('info', help='mmdet3d KITTI info file (kitti_infos_train.pkl, ...)')
    p.add_argument('out', help='output json')
    p.add_argument('--classes', nargs='+', default=['Pedestrian', 'Cyclist', 'Car'])
    args = p.parse_args(argv)
    out = kitti_info_to_coco(args.info, args.out, args.classes)
    print(f'{args.out}: {len(out["images"])} images, {len(out["annotations"])} boxes')
    return out


if __name__ == '__main__':
    main()
