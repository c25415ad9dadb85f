"""Where does a checkpoint lose its 3D AP? Recall, 2D box precision and depth error on val cars.

KITTI's AP folds detection, 2D box precision and 3D localisation into one number. This tool
separates them for the moderate val cars (2D height >= 25 px, occlusion <= 1, truncation
<= 0.3): how many are found (a prediction with 2D IoU > 0.3 and score > ``--score``), how
precise the found 2D boxes are (KITTI's 2D threshold for cars is IoU 0.7; and the relative
error of their height, which the geometric depth divides by), how far the predicted depth lies
from the truth (a 4 m car parallel to the road keeps 3D IoU >= 0.5 only within about 1.3 m of
depth error, a car seen side-on within about 0.5 m), and whether the yaw has the car's length
axis (yaw error modulo pi under 20 degrees; front/back, which 3D IoU ignores, is left to
KITTI's AOS)::

    python tools/benchmarks/error_breakdown.py CONFIG CHECKPOINT --data data/synth_kitti \
        --frames 200
"""
import argparse
import math
import pickle
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from mmdet.structures.bbox import bbox_overlaps

from mmdet3d_skd.datasets.kitti_format import kitti_difficulty

#: a found car "has its length axis" when its yaw error modulo pi is under this (degrees)
AXIS_DEG = 20.0


def is_moderate_car(inst: dict, car_label: int = 2) -> bool:
    """KITTI's moderate difficulty (and easier) for a car label of an mmdet3d info file."""
    x1, y1, x2, y2 = inst['bbox']
    return (inst['bbox_label'] == car_label
            and kitti_difficulty(y2 - y1, inst['occluded'], inst['truncated']) in (0, 1))


def yaw_error_mod_pi(yaw_pred: float, yaw_true: float) -> float:
    """|yaw_pred - yaw_true| modulo pi, in degrees in [0, 90]: 0 when the box has the car's
    length axis (whichever way it faces), 90 when length and width are swapped."""
    d = (yaw_pred - yaw_true) % math.pi
    return math.degrees(min(d, math.pi - d))


def match_cars(gts: List[dict], boxes2d: torch.Tensor, depths: torch.Tensor,
               yaws: Optional[torch.Tensor] = None,
               min_iou: float = 0.3) -> List[Dict[str, float]]:
    """For each ground-truth car, the best-overlapping prediction (2D IoU > ``min_iou``):
    its IoU and depth error ``z_pred - z_true`` (and, given ``yaws``, the relative 2D box height
    error ``dh`` and the yaw error modulo pi ``dyaw`` in degrees); ``{}`` for a car that
    nothing found."""
    out = []
    for g in gts:
        if len(boxes2d) == 0:
            out.append({})
            continue
        iou = bbox_overlaps(torch.tensor([g['bbox']], dtype=boxes2d.dtype), boxes2d)[0]
        j = int(iou.argmax())
        if iou[j] <= min_iou:
            out.append({})
            continue
        m = dict(iou=float(iou[j]), dz=float(depths[j]) - g['bbox_3d'][2])
        if yaws is not None:
            h_true = g['bbox'][3] - g['bbox'][1]
            m['dh'] = float(boxes2d[j, 3] - boxes2d[j, 1]) / h_true - 1.0
            m['dyaw'] = yaw_error_mod_pi(float(yaws[j]), g['bbox_3d'][6])
        out.append(m)
    return out


def summarise(matches: List[Dict[str, float]]) -> Dict[str, float]:
    found = [m for m in matches if m]
    iou = np.array([m['iou'] for m in found])
    dz = np.array([m['dz'] for m in found])
    if not len(found):
        return dict(cars=len(matches), recall=0.0)
    out = dict(cars=len(matches), recall=len(found) / len(matches), iou=float(iou.mean()),
               iou07=float((iou >= 0.7).mean()), bias=float(np.median(dz)),
               mae=float(np.median(np.abs(dz))), within1=float((np.abs(dz) < 1.0).mean()))
    if all('dyaw' in m for m in found):
        dh = np.array([m['dh'] for m in found])
        dyaw = np.array([m['dyaw'] for m in found])
        out.update(dh_mae=float(np.median(np.abs(dh))), dh_bias=float(np.median(dh)),
                   axis_ok=float((dyaw < AXIS_DEG).mean()), dyaw_median=float(np.median(dyaw)))
    return out


def main(argv=None) -> None:
    from mmengine.config import Config
    from mmengine.runner import Runner, load_checkpoint

    import mmdet3d_skd  # noqa: F401
    from mmdet3d.registry import MODELS
    from mmdet3d.utils import register_all_modules
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--data', type=Path, default=Path('data/synth_kitti'))
    p.add_argument('--frames', type=int, default=200)
    p.add_argument('--score', type=float, default=0.25)
    args = p.parse_args(argv)
    register_all_modules()
    cfg = Config.fromfile(args.config)
    dl_cfg = cfg.test_dataloader
    dl_cfg.dataset.data_root = f'{args.data}/'
    dl_cfg.dataset.indices = args.frames
    dl_cfg.num_workers, dl_cfg.persistent_workers, dl_cfg.batch_size = 0, False, 4
    model = MODELS.build(cfg.model)
    load_checkpoint(model, args.checkpoint, map_location='cpu')
    model.eval()
    infos = pickle.load(open(args.data / 'kitti_infos_val.pkl', 'rb'))['data_list']
    matches = []
    with torch.no_grad():
        for batch in Runner.build_dataloader(dl_cfg):
            for out in model.test_step(batch):
                gts = [x for x in infos[out.sample_idx]['instances'] if is_moderate_car(x)]
                keep = (out.pred_instances.labels == 2) & (out.pred_instances.scores > args.score)
                boxes3d = out.pred_instances_3d.bboxes_3d.tensor[keep]
                matches += match_cars(gts, out.pred_instances.bboxes[keep], boxes3d[:, 2],
                                      boxes3d[:, 6])
    r = summarise(matches)
    print(f"moderate cars: {r['cars']}; found (2D IoU > 0.3, score > {args.score}): "
          f"{100 * r['recall']:.0f} %")
    if 'iou' in r:
        print(f"found cars: mean 2D IoU {r['iou']:.2f}, 2D IoU >= 0.7 {100 * r['iou07']:.0f} %; "
              f"depth error median {r['bias']:+.2f} m, median abs {r['mae']:.2f} m, "
              f"within 1 m {100 * r['within1']:.0f} %")
        print(f"2D box height error median {r['dh_bias']:+.3f}, median abs {r['dh_mae']:.3f} "
              f"(relative); yaw error modulo pi median {r['dyaw_median']:.1f} deg, under "
              f"{AXIS_DEG:.0f} deg (length axis right) {100 * r['axis_ok']:.0f} %")


if __name__ == '__main__':
    main()
