"""Pictures of monocular 3D detections: the boxes on the image and a bird's-eye view beside it.

:class:`SKDLocalVisualizer` is mmdet3d's ``Det3DLocalVisualizer`` with three changes for
detectors whose test pipeline rescales ``cam2img`` (our ``DepthAffineResize`` does, so that
the head decodes boxes with the network input's intrinsics):

1. Projection. ``Det3DVisualizationHook`` and ``MonoDet3DInferencer`` draw on the image as
   read from disk but project with ``metainfo['cam2img']``, the resized input's matrix, so the
   boxes land in the wrong place. Here the matrix is chosen by the size of the image drawn on
   (:func:`camera_meta_for_image`): ``ori_cam2img`` for the original (``ori_shape``),
   ``cam2img`` for the network input (``img_shape``). The 3D boxes themselves are in the camera
   frame and need no mapping.
2. Empty pictures. With no box above ``score_thr`` the parent returns no image and mmengine's
   ``add_image(name, None)`` fails; here the image is drawn as it is.
3. A bird's-eye-view panel (``bev=True``): camera at the bottom centre, ``x`` to the right, ``z``
   up, ``bev_range`` metres forward, range lines every 10 m, each box's footprint with a tick
   from its centre to its front face; and a label ``class score depth`` on each box
   (``draw_labels``).

Everything else (multi-view, point clouds, 2D boxes, backends) is the parent's.
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmdet.visualization import get_palette
from mmengine.structures import InstanceData

from mmdet3d.registry import VISUALIZERS
from mmdet3d.structures import CameraInstance3DBoxes
from mmdet3d.visualization import Det3DLocalVisualizer

#: Colours (RGB) of the KITTI classes; other classes take the data set's palette.
CLASS_COLORS = {'Car': (0, 210, 90), 'Van': (0, 170, 170), 'Truck': (0, 120, 255),
                'Pedestrian': (255, 60, 60), 'Person_sitting': (255, 120, 120),
                'Cyclist': (255, 190, 0), 'Tram': (160, 90, 255), 'Misc': (200, 200, 200)}


def camera_meta_for_image(meta: dict, image_hw: Sequence[int]) -> dict:
    """``meta`` with the ``cam2img`` that maps the camera frame to an image of size
    ``image_hw``: ``ori_cam2img`` when that is the original image (``ori_shape``) and the
    pipeline changed the matrix, else ``cam2img``. Returned as a 4x4 array (mmdet3d's projection
    accepts 3x3/4x4 only, KITTI's P2 is 3x4)."""
    out = dict(meta)
    hw = tuple(int(v) for v in image_hw[:2])
    ori = meta.get('ori_shape', None)
    P = meta['cam2img']
    if 'ori_cam2img' in meta and ori is not None and tuple(ori[:2]) == hw:
        P = meta['ori_cam2img']
    P = np.asarray(P.cpu() if isinstance(P, torch.Tensor) else P, dtype=np.float64)
    P4 = np.eye(4)
    P4[:P.shape[0], :P.shape[1]] = P
    out['cam2img'] = P4
    return out


@VISUALIZERS.register_module()
class SKDLocalVisualizer(Det3DLocalVisualizer):
    """Det3DLocalVisualizer with the right ``cam2img`` for the picture drawn on, pictures
    without detections, a bird's-eye-view panel and box labels (see the module docstring).

    Args:
        bev (bool): append the bird's-eye-view panel (square, the image's height).
        bev_range (float): metres shown forward (and +-bev_range/2 sideways).
        draw_labels (bool): write ``class score depth`` above each projected box.
        **kwargs: Det3DLocalVisualizer's.
    """

    def __init__(self, name: str = 'visualizer', bev: bool = True, bev_range: float = 60.0,
                 draw_labels: bool = True, **kwargs):
        super().__init__(name=name, **kwargs)
        self.bev = bev
        self.bev_range = float(bev_range)
        self.draw_labels = draw_labels

    # ------------------------------------------------------------------ colours
    def _colors(self, labels, palette=None) -> List[Tuple[int, int, int]]:
        labels = [int(v) for v in labels]
        classes = (self.dataset_meta or {}).get('classes', None) or ()
        n = max(labels + [len(classes) - 1, 0]) + 1
        pal = get_palette(self.bbox_color if self.bbox_color is not None else
                          (palette if palette is not None else 'random'), n)
        out = []
        for lab in labels:
            name = classes[lab] if 0 <= lab < len(classes) else None
            if self.bbox_color is None and name in CLASS_COLORS:
                out.append(CLASS_COLORS[name])
            else:
                out.append(tuple(int(c) for c in pal[lab]))
        return out

    def _class_name(self, label: int) -> str:
        classes = (self.dataset_meta or {}).get('classes', None) or ()
        return classes[label] if 0 <= label < len(classes) else str(label)

    # ------------------------------------------------------------------ drawing
    def _freeze_view(self, y_up: bool = False) -> None:
        """Pin the axes to the picture (``x`` in ``[0, width]``, ``y`` down, or up for the
        bird's-eye view): matplotlib would otherwise widen them with margins or to take in box
        edges that leave the image, shrinking and shifting the picture."""
        self.ax_save.set_autoscale_on(False)
        self.ax_save.set_xlim(0, self.width)
        self.ax_save.set_ylim(*((0, self.height) if y_up else (self.height, 0)))

    def _draw_instances_3d(self, data_input: dict, instances: InstanceData, input_meta: dict,
                           vis_task: str, show_pcd_rgb: bool = False,
                           palette: Optional[List[tuple]] = None) -> Optional[dict]:
        img = data_input.get('img', None)
        if vis_task != 'mono_det' or not isinstance(img, np.ndarray) or img.ndim != 3 or \
                (len(instances) and not isinstance(instances.bboxes_3d, CameraInstance3DBoxes)):
            return super()._draw_instances_3d(data_input, instances, input_meta, vis_task,
                                              show_pcd_rgb, palette)
        drawn = self.draw_camera_view(img, instances, input_meta, palette)
        if self.bev:
            bev = self.draw_bev_view(instances, drawn.shape[0], palette)
            drawn = np.concatenate([drawn, bev], axis=1)
        return dict(img=drawn)

    def draw_camera_view(self, img: np.ndarray, instances: InstanceData, meta: dict,
                         palette=None) -> np.ndarray:
        """The RGB image with the 3D boxes projected (boxes in front of the camera only)."""
        self.set_image(img)
        self._freeze_view()
        if len(instances):
            front = instances.bboxes_3d.corners[..., 2].min(-1).values > 0.1
            idx = torch.nonzero(front.cpu()).flatten()
            if len(idx):
                shown = instances[idx.to(instances.labels_3d.device)]
                meta = camera_meta_for_image(meta, img.shape[:2])
                colors = self._colors(shown.labels_3d.tolist(), palette)
                self.draw_proj_bboxes_3d(shown.bboxes_3d, meta, edge_colors=colors,
                                         line_widths=max(1.0, img.shape[0] / 250))
                if self.draw_labels:
                    self._label_boxes(shown, meta, colors)
        return self.get_image()

    def _label_boxes(self, shown: InstanceData, meta: dict, colors) -> None:
        P = torch.as_tensor(meta['cam2img'], dtype=torch.float32)
        corners = shown.bboxes_3d.corners.cpu().float()  # (N, 8, 3)
        hom = torch.cat([corners, torch.ones_like(corners[..., :1])], -1) @ P.T
        uv = hom[..., :2] / hom[..., 2:3]
        top_left = uv.min(1).values.numpy()
        pos = np.stack([np.clip(top_left[:, 0], 0, self.width - 40),
                        np.clip(top_left[:, 1] - 2, 12, self.height - 1)], 1)
        scores = shown.scores_3d.tolist() if 'scores_3d' in shown else [None] * len(shown)
        depth = shown.bboxes_3d.tensor[:, 2].tolist()
        texts = [f'{self._class_name(int(lab))}' + (f' {s:.2f}' if s is not None else '') +
                 f' {z:.0f}m' for lab, s, z in zip(shown.labels_3d.tolist(), scores, depth)]
        size = max(7, int(self.height / 45))
        self.draw_texts(texts, pos, font_sizes=size, colors=colors,
                        vertical_alignments='bottom',
                        bboxes=[dict(facecolor='black', alpha=0.5, pad=0.5,
                                     edgecolor='none')] * len(texts))

    def draw_bev_view(self, instances: InstanceData, size: int, palette=None) -> np.ndarray:
        """A ``size x size`` bird's-eye view: camera at the bottom centre, ``bev_range`` metres
        up, range lines every 10 m, box footprints with a heading tick to the front face."""
        canvas = np.zeros((size, size, 3), dtype=np.uint8)
        self.set_image(canvas)  # sizes the figure
        self.set_bev_image(canvas)  # mmdet3d's: origin at the bottom, camera field of view
        self._freeze_view(y_up=True)
        scale = size / self.bev_range
        font = max(7, int(size / 45))
        for r in range(10, int(self.bev_range), 10):
            y = r * scale
            self.draw_lines(np.array([0, size - 1]), np.array([y, y]), colors=(90, 90, 90),
                            line_widths=0.5, line_styles='--')
            self.draw_texts(f'{r} m', np.array([3, y + 2]), font_sizes=font,
                            colors=(150, 150, 150), vertical_alignments='bottom')
        if len(instances):
            boxes = instances.bboxes_3d.to('cpu')
            colors = self._colors(instances.labels_3d.tolist(), palette)
            self.draw_bev_bboxes(boxes, scale=scale, edge_colors=colors,
                                 line_widths=max(1.0, size / 250))
            t = boxes.tensor.float()
            x, z, length, ry = t[:, 0], t[:, 2], t[:, 3], t[:, 6]
            # local (l/2, 0, 0) -> camera (l/2 cos ry, ., -l/2 sin ry) (architecture.md)
            fx, fz = x + length / 2 * torch.cos(ry), z - length / 2 * torch.sin(ry)
            xs = torch.stack([x, fx], 1).numpy() * scale + size / 2
            zs = torch.stack([z, fz], 1).numpy() * scale
            self.draw_lines(xs, zs, colors=colors, line_widths=max(1.0, size / 250))
        self.draw_texts('BEV (x right, z forward)', np.array([size / 2, size - 3]),
                        font_sizes=font, colors=(150, 150, 150),
                        horizontal_alignments='center')
        return self.get_image()


__all__ = ['SKDLocalVisualizer', 'camera_meta_for_image', 'CLASS_COLORS']
