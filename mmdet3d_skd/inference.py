"""Inference on single images: the test pipeline's input, a prediction, its picture and its
KITTI label lines. ``tools/demo.py`` (one image) and ``tools/predict.py`` (a folder) use these.

mmdet3d's ``MonoDet3DInferencer`` needs an info file per image and draws with the network
input's ``cam2img`` (see :mod:`mmdet3d_skd.visualization`), hence these few functions.
"""
import math
from typing import List, Sequence

import mmcv
import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate

from .visualization import SKDLocalVisualizer


def build_input(image: str, cam2img: np.ndarray) -> dict:
    """The dict a mono-3D test pipeline starts from (as mmdet3d's dataset gives it)."""
    from mmdet3d.structures import get_box_type
    box_type_3d, box_mode_3d = get_box_type('camera')
    cam2img = np.asarray(cam2img, dtype=np.float64)
    P4 = np.eye(4)
    P4[:cam2img.shape[0], :cam2img.shape[1]] = cam2img
    return dict(images=dict(CAM2=dict(img_path=image, cam2img=P4.tolist())), img_path=image,
                box_type_3d=box_type_3d, box_mode_3d=box_mode_3d)


def predict(model, cfg: Config, image: str, cam2img: np.ndarray, pipeline=None):
    """Det3DDataSample of ``image`` through the config's test pipeline (or ``pipeline``, a
    built Compose, to reuse across images) and ``model``."""
    if pipeline is None:
        pipeline = Compose(cfg.test_dataloader.dataset.pipeline)
    data = pseudo_collate([pipeline(build_input(image, cam2img))])
    with torch.no_grad():
        return model.test_step(data)[0]


def draw(result, image: str, out: str, dataset_meta: dict, score_thr: float = 0.3,
         bev: bool = True, bev_range: float = 60.0, vis: SKDLocalVisualizer = None
         ) -> np.ndarray:
    """Write the picture of ``result``'s 3D boxes (on the image, and a bird's-eye view beside
    it) to ``out``; returns it (RGB). Pass ``vis`` to reuse one visualizer across images."""
    if vis is None:
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
    """A printable table of the detections above ``score_thr``."""
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


def detections(result, classes: Sequence[str], cam2img, width: int, height: int,
               score_thr: float = 0.0) -> List[dict]:
    """The detections above ``score_thr`` as dicts: ``class``, ``score``, ``bbox`` (the
    projected 3D box's enclosing rectangle, clipped to the ``width`` x ``height`` image; None
    for a box reaching behind the camera), ``location`` (bottom centre x, y, z), ``dimensions``
    (l, h, w), ``rotation_y``, ``alpha`` (``ry - atan2(x, z)``), in the camera frame."""
    from .evaluation.weak_mono3d_metric import projected_boxes
    pred = result.pred_instances_3d
    keep = (pred.scores_3d > score_thr).cpu()
    boxes3d = pred.bboxes_3d[keep.to(pred.scores_3d.device)].to('cpu')
    scores = pred.scores_3d.cpu()[keep].tolist()
    labels = pred.labels_3d.cpu()[keep].tolist()
    out = []
    if len(scores) == 0:
        return out
    rects, front = projected_boxes(boxes3d, cam2img, width, height)
    rect_of = dict(zip(np.flatnonzero(front).tolist(), rects.tolist()))
    for i, (box, s, lab) in enumerate(zip(boxes3d.tensor.tolist(), scores, labels)):
        x, y, z, l, h, w, ry = box[:7]
        alpha = ry - math.atan2(x, z)
        alpha = (alpha + math.pi) % (2 * math.pi) - math.pi
        out.append({'class': classes[lab] if 0 <= lab < len(classes) else str(lab),
                    'score': float(s), 'bbox': rect_of.get(i), 'location': [x, y, z],
                    'dimensions': [l, h, w], 'rotation_y': ry, 'alpha': alpha})
    return out


def kitti_label_lines(dets: List[dict]) -> List[str]:
    """KITTI result lines (``type trunc occ alpha x1 y1 x2 y2 h w l x y z ry score``, dims in
    KITTI's ``h w l`` order) of :func:`detections`; boxes without a rectangle are left out."""
    lines = []
    for d in dets:
        if d['bbox'] is None:
            continue
        (x1, y1, x2, y2), (l, h, w) = d['bbox'], d['dimensions']
        x, y, z = d['location']
        lines.append(f'{d["class"]} -1 -1 {d["alpha"]:.4f} {x1:.2f} {y1:.2f} {x2:.2f} {y2:.2f} '
                     f'{h:.4f} {w:.4f} {l:.4f} {x:.4f} {y:.4f} {z:.4f} {d["rotation_y"]:.4f} '
                     f'{d["score"]:.4f}')
    return lines


__all__ = ['build_input', 'predict', 'draw', 'format_detections', 'detections',
           'kitti_label_lines']
