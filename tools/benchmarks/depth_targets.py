"""How good are the weak depth targets? Pseudo-point depth targets against the 3D truth.

For the val frames of a generated synthetic set (whose 3D truth is exact), extracts the pseudo
points of every labelled 2D box from the estimator-like depth map with training's function
(``batch_pseudo_points``, its defaults but ``surface_quantile``) and compares each box's
depth target ``z*`` with the true centre depth, per ``surface_quantile``, and its observed yaw
(``yaw_obs``, the L-shape fit with the length axis resolved by the class prior) with the true
yaw modulo pi::

    python tools/benchmarks/depth_targets.py --data data/synth_kitti --frames 200 \
        --quantiles 0.05,0.25 [--centre-rule box] [--yaw-rule box_fit]

The depth map is used at full resolution with ``depth_stride`` scaled so that the pixel density
matches the training input (a 384-pixel-wide input with ``depth_stride=2`` samples about every
6th original pixel). Cars of KITTI's moderate difficulty (2D height >= 25 px, occlusion <= 1,
truncation <= 0.3) only. Nothing of this reaches training: the truth is read here to measure.
"""
import argparse
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from error_breakdown import AXIS_DEG, is_moderate_car, yaw_error_mod_pi  # beside this script
from mmcv import imread

from mmdet3d_skd.datasets.kitti_format import KITTI_DIMS_PRIOR, decode_depth_png
from mmdet3d_skd.models.pseudo_points import batch_pseudo_points


def frame_pseudo_points(data: Path, info: dict, quantile: float, depth_stride: int,
                        centre_rule: str = 'surface', yaw_rule: str = 'lshape'):
    """Training's pseudo points of every labelled 2D box of one val frame (occluders are found
    among them) from its depth map: ``(pseudo, boxes2d (N,4), cam2img (N,4,4))``."""
    img = Path(info['images']['CAM2']['img_path']).name
    depth_file = data / 'training' / 'depth_2' / img
    depth = imread(str(depth_file), flag='unchanged')
    if depth is None:
        raise FileNotFoundError(f'{depth_file}: missing or unreadable depth map')
    depth = torch.from_numpy(decode_depth_png(depth))
    boxes = torch.tensor([x['bbox'] for x in info['instances']], dtype=torch.float32)
    labels = torch.tensor([x['bbox_label'] for x in info['instances']])
    k = torch.eye(4)
    k[:3, :4] = torch.tensor(info['images']['CAM2']['cam2img'], dtype=torch.float32)[:3, :4]
    k = k.expand(len(boxes), 4, 4)
    targets = SimpleNamespace(batch_idx=torch.zeros(len(boxes), dtype=torch.long),
                              boxes2d=boxes, labels=labels, cam2img=k)
    pseudo = batch_pseudo_points(depth[None], targets, torch.tensor(KITTI_DIMS_PRIOR),
                                 depth_stride=depth_stride, surface_quantile=quantile,
                                 centre_rule=centre_rule, yaw_rule=yaw_rule)
    return pseudo, boxes, k


def measure(data: Path, frames: int, quantile: float, depth_stride: int,
            centre_rule: str = 'surface', yaw_rule: str = 'lshape') -> dict:
    infos = pickle.load(open(data / 'kitti_infos_val.pkl', 'rb'))['data_list'][:frames]
    err, dyaw, valid, total = [], [], 0, 0
    for info in infos:
        cars = [is_moderate_car(x) for x in info['instances']]
        if not any(cars):
            continue
        pseudo, _, _ = frame_pseudo_points(data, info, quantile, depth_stride, centre_rule,
                                           yaw_rule)
        for i, x in enumerate(info['instances']):
            if not cars[i]:
                continue
            total += 1
            if bool(pseudo.valid[i]) and np.isfinite(float(pseudo.depth_target[i])):
                valid += 1
                err.append(float(pseudo.depth_target[i]) - x['bbox_3d'][2])
                dyaw.append(yaw_error_mod_pi(float(pseudo.yaw_obs[i]), x['bbox_3d'][6]))
    e = np.array(err)
    if len(e) == 0:
        raise ValueError(f'{data}: no moderate car with a depth target in the first {frames} '
                         'val frames')
    return dict(quantile=quantile, cars=total, valid=valid, bias=float(np.median(e)),
                mae=float(np.median(np.abs(e))), within1=float((np.abs(e) < 1.0).mean()),
                within05=float((np.abs(e) < 0.5).mean()),
                axis_ok=float((np.array(dyaw) < AXIS_DEG).mean()))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data', type=Path, default=Path('data/synth_kitti'))
    p.add_argument('--frames', type=int, default=200)
    p.add_argument('--quantiles', default='0.05,0.25')
    p.add_argument('--depth-stride', type=int, default=6)
    p.add_argument('--centre-rule', choices=('surface', 'box'), default='surface',
                   help="the depth target's rule (extract_pseudo_points' centre_rule)")
    p.add_argument('--yaw-rule', choices=('lshape', 'box_fit'), default='lshape',
                   help="yaw_obs's rule (extract_pseudo_points' yaw_rule)")
    args = p.parse_args(argv)
    print('| surface_quantile | cars | with a target | median z* - z (m) | median abs (m) '
          f'| within 0.5 m | within 1 m | yaw_obs axis right (mod pi < {AXIS_DEG:.0f} deg) |')
    print('|---|---|---|---|---|---|---|---|')
    for q in (float(v) for v in args.quantiles.split(',')):
        r = measure(args.data, args.frames, q, args.depth_stride, args.centre_rule, args.yaw_rule)
        print(f"| {q} | {r['cars']} | {r['valid']} | {r['bias']:+.2f} | {r['mae']:.2f} | "
              f"{100 * r['within05']:.0f} % | {100 * r['within1']:.0f} % | "
              f"{100 * r['axis_ok']:.0f} % |")


if __name__ == '__main__':
    main()
