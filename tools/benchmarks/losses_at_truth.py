"""Do the weak losses prefer the true box? Each weak term at the true 3D boxes of val cars,
and at the same boxes turned by 90 degrees (length and width swapped).

A weak run that settles with its cars' length and width swapped (docs/benchmarks.md) could
be a convention error in a loss or a trap in training; this tells the two apart. For the
moderate val cars with valid pseudo points (training's rule, as ``depth_targets.py``) it
prints the median of the BEV alignment and projection terms and the mean of the orientation
term (period pi and pi/2) at the true yaw and at the yaw + 90 degrees::

    python tools/benchmarks/losses_at_truth.py --data data/synth_kitti --frames 60

The truth is read here to measure; nothing of this reaches training.
"""
import argparse
import math
import pickle
from pathlib import Path

import torch
from depth_targets import frame_pseudo_points  # tools/benchmarks, beside this script
from error_breakdown import is_moderate_car

from mmdet3d_skd.models.weak_losses import (bev_alignment_loss, orientation_loss,
                                            projection_consistency_loss)


def losses_at(boxes3d: torch.Tensor, pseudo, boxes2d: torch.Tensor, cam2img: torch.Tensor,
              turn: float) -> dict:
    """The weak terms of each instance at its true box (mmdet3d camera rows, bottom centre)
    with the yaw turned by ``turn``."""
    center = boxes3d[:, :3].clone()
    center[:, 1] -= boxes3d[:, 4] / 2  # gravity centre
    dims, yaw = boxes3d[:, 3:6], boxes3d[:, 6] + turn
    ones = torch.ones_like(yaw)
    return dict(align=bev_alignment_loss(center, dims, yaw, pseudo.points, pseudo.mask.bool()),
                proj=projection_consistency_loss(center, dims, yaw, cam2img, boxes2d),
                orient_pi=orientation_loss(yaw, pseudo.yaw_obs, ones, math.pi),
                orient_half_pi=orientation_loss(yaw, pseudo.yaw_obs, ones, 0.5 * math.pi))


def measure(data: Path, frames: int, quantile: float = 0.2, depth_stride: int = 6) -> dict:
    """``{0.0 / 90.0: {cars, align, proj (medians), orient_pi, orient_half_pi (means)}}``
    over the moderate cars with valid pseudo points of the first ``frames`` val frames."""
    infos = pickle.load(open(data / 'kitti_infos_val.pkl', 'rb'))['data_list'][:frames]
    rows = {0.0: [], 90.0: []}
    for info in infos:
        cars = torch.tensor([is_moderate_car(x) for x in info['instances']], dtype=torch.bool)
        if not cars.any():
            continue
        pseudo, boxes2d, cam2img = frame_pseudo_points(data, info, quantile, depth_stride)
        boxes3d = torch.tensor([x['bbox_3d'] for x in info['instances']], dtype=torch.float32)
        sel = cars & pseudo.valid.bool()
        for deg in rows:
            terms = losses_at(boxes3d, pseudo, boxes2d, cam2img, math.radians(deg))
            rows[deg].append({k: v[sel] for k, v in terms.items()})
    out = {}
    for deg, parts in rows.items():
        if not parts:
            raise ValueError(f'{data}: no moderate car in the first {frames} val frames')
        t = {k: torch.cat([r[k] for r in parts]) for k in parts[0]}
        out[deg] = dict(cars=len(t['align']), align=float(t['align'].median()),
                        proj=float(t['proj'].median()), orient_pi=float(t['orient_pi'].mean()),
                        orient_half_pi=float(t['orient_half_pi'].mean()))
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data', type=Path, default=Path('data/synth_kitti'))
    p.add_argument('--frames', type=int, default=60)
    p.add_argument('--quantile', type=float, default=0.2)
    p.add_argument('--depth-stride', type=int, default=6)
    args = p.parse_args(argv)
    print('| yaw | cars | alignment, median (m) | projection, median | orientation (period pi), '
          'mean | orientation (period pi/2), mean |')
    print('|---|---|---|---|---|---|')
    for deg, r in measure(args.data, args.frames, args.quantile, args.depth_stride).items():
        print(f"| true + {deg:.0f} deg | {r['cars']} | {r['align']:.2f} | {r['proj']:.2f} | "
              f"{r['orient_pi']:.2f} | {r['orient_half_pi']:.2f} |")


if __name__ == '__main__':
    main()
