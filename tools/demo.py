"""Detect 3D boxes in one image and draw them: the image with the projected boxes, and a
bird's-eye view beside it (one PNG). Runs the student (the image alone, no depth map)::

    python tools/demo.py demo/000008.png --calib demo/000008.txt \\
        --config configs/skd_wm3d_kitti.py --checkpoint work_dirs/skd_wm3d_kitti/epoch_72.pth \\
        --out demo_000008.png --score-thr 0.3 --device cpu

``--calib``: a KITTI calib txt (its P2) or a text file with a row-major 3x3/3x4/4x4 matrix.
The test pipeline of the config is used as it is (its ``DepthAffineResize`` also rescales
``cam2img``); the boxes come out in the camera frame and are drawn with the original image's
matrix (:class:`mmdet3d_skd.visualization.SKDLocalVisualizer`). The detections are printed
(class, score, x y z, l h w, yaw). See docs/demo.md.
"""
import argparse
import os.path as osp
import sys

import mmcv
import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.dataset import Compose, pseudo_collate

import mmdet3d_skd  # noqa: F401  registers our modules
from mmdet3d_skd.depth_estimators import read_intrinsics
from mmdet3d_skd.visualization import SKDLocalVisualizer


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


def build_input(image: str, cam2img: np.ndarray) -> dict:
    """The dict a mono-3D test pipeline starts from (as mmdet3d's dataset gives it)."""
    from mmdet3d.structures import get_box_type
    box_type_3d, box_mode_3d = get_box_type('camera')
    P4 = np.eye(4)
    P4[:cam2img.shape[0], :cam2img.shape[1]] = cam2img
    return dict(images=dict(CAM2=dict(img_path=image, cam2img=P4.tolist())), img_path=image,
                box_type_3d=box_type_3d, box_mode_3d=box_mode_3d)


def predict(model, cfg: Config, image: str, cam2img: np.ndarray):
    """Det3DDataSample of ``image`` through the config's test pipeline and ``model``."""
    pipeline = Compose(cfg.test_dataloader.dataset.pipeline)
    data = pseudo_collate([pipeline(build_input(image, cam2img))])
    with torch.no_grad():
        return model.test_step(data)[0]


def draw(result, image: str, out: str, dataset_meta: dict, score_thr: float = 0.3,
         bev: bool = True, bev_range: float = 60.0) -> np.ndarray:
    """Write the picture of ``result``'s 3D boxes to ``out``; returns it (RGB)."""
    vis = SKDLocalVisualizer(name=f'skd_demo_{id(result)}', bev=bev, bev_range=bev_range)
    vis.dataset_meta = dataset_meta
    img = mmcv.imread(image, channel_order='rgb')
    result = result.clone()
    if 'pred_instances' in result:  # the 2D boxes would go to a second file
        del result.pred_instances
    vis.add_datasample('demo', dict(img=img), result, draw_gt=False, out_file=out,
                       pred_score_thr=score_thr, vis_task='mono_det')
    return mmcv.imread(out, channel_order='rgb')


def format_detections(result, classes, score_thr: float) -> str:
    pred = result.pred_instances_3d
    keep = pred.scores_3d > score_thr
    rows = [f'{"class":<11} {"score":>5} {"x":>6} {"y":>6} {"z":>6} {"l":>5} {"h":>5} {"w":>5}'
            f' {"yaw":>6}']
    for box, s, lab in zip(pred.bboxes_3d.tensor[keep].tolist(), pred.scores_3d[keep].tolist(),
                           pred.labels_3d[keep].tolist()):
        name = classes[lab] if lab < len(classes) else str(lab)
        rows.append(f'{name:<11} {s:5.2f} ' + ' '.join(f'{v:6.2f}' for v in box[:3]) + ' ' +
                    ' '.join(f'{v:5.2f}' for v in box[3:6]) + f' {box[6]:6.2f}')
    return '\n'.join(rows)


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
