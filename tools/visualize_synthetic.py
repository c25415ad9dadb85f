"""Draw one frame of a KITTI-layout data set: 2D label boxes, projected 3D boxes, depth map.

Reads ``training/{image_2,label_2,calib,depth_2}`` only, so it works on real KITTI too::

    python tools/visualize_synthetic.py --root data/synth_kitti --idx 3 \\
        --out docs/images/synthetic_example.png

Top: the image with each label's 2D box (thin, class colour) and its 3D box projected through
P2 (front face marked by a cross); bottom: the depth map (turbo colour map, 0-80 m, black =
invalid). The output is a 256-colour PNG, scaled by ``--scale``.
"""
import argparse
import os.path as osp

import cv2
import numpy as np

from mmdet3d_skd.datasets.kitti_format import decode_depth_png, read_calib

COLORS = {'Car': (0, 220, 0), 'Pedestrian': (255, 60, 60), 'Cyclist': (255, 0, 255),
          'DontCare': (150, 150, 150)}
# corner order: x in (-l/2, l/2), y in (0, -h), z in (-w/2, w/2); the 12 edges
_EDGES = [(0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (1, 5),
          (2, 6), (3, 7)]


def box_corners(dims_hwl, loc, ry):
    """8 corners (camera frame) of a KITTI label box; local +x (front) corners are 4..7."""
    h, w, length = dims_hwl
    c = np.array([[sx * length / 2, sy, sz * w / 2] for sx in (-1, 1) for sy in (0.0, -h)
                  for sz in (-1, 1)])
    cos, sin = np.cos(ry), np.sin(ry)
    R = np.array([[cos, 0, sin], [0, 1, 0], [-sin, 0, cos]])
    return c @ R.T + np.asarray(loc)


def draw_frame(root: str, idx: int, max_depth: float = 80.0) -> np.ndarray:
    name = f'{idx:06d}'
    t = osp.join(root, 'training')
    img = cv2.imread(osp.join(t, 'image_2', name + '.png'), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f'{t}/image_2/{name}.png not found')
    P2 = read_calib(osp.join(t, 'calib', name + '.txt'))['P2']
    with open(osp.join(t, 'label_2', name + '.txt')) as f:
        labels = [line.split() for line in f if line.strip()]
    for lab in labels:
        col = COLORS.get(lab[0], (0, 200, 255))[::-1]
        x1, y1, x2, y2 = (int(round(float(v))) for v in lab[4:8])
        cv2.rectangle(img, (x1, y1), (x2, y2), col, 1)
        if lab[0] == 'DontCare':
            continue
        dims = [float(v) for v in lab[8:11]]
        corners = box_corners(dims, [float(v) for v in lab[11:14]], float(lab[14]))
        uvw = corners @ P2[:, :3].T + P2[:, 3]
        if (uvw[:, 2] <= 0.1).any():
            continue
        uv = (uvw[:, :2] / uvw[:, 2:]).round().astype(int)
        for a, b in _EDGES:
            cv2.line(img, tuple(uv[a]), tuple(uv[b]), col, 2, cv2.LINE_AA)
        cv2.line(img, tuple(uv[4]), tuple(uv[7]), col, 1, cv2.LINE_AA)  # front face cross
        cv2.line(img, tuple(uv[5]), tuple(uv[6]), col, 1, cv2.LINE_AA)
        cv2.putText(img, lab[0][:3], (x1, max(y1 - 3, 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, col,
                    1, cv2.LINE_AA)
    raw = cv2.imread(osp.join(t, 'depth_2', name + '.png'), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise FileNotFoundError(f'{t}/depth_2/{name}.png not found')
    depth = decode_depth_png(raw)
    vis = cv2.applyColorMap((np.clip(depth / max_depth, 0, 1) * 255).astype(np.uint8),
                            cv2.COLORMAP_TURBO)
    vis[depth <= 0] = 0
    return np.concatenate([img, vis], axis=0)   # BGR


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--root', default='data/synth_kitti')
    p.add_argument('--idx', type=int, default=0)
    p.add_argument('--out', default='docs/images/synthetic_example.png')
    p.add_argument('--scale', type=float, default=0.8)
    args = p.parse_args(argv)
    canvas = draw_frame(args.root, args.idx)
    if args.scale != 1.0:
        canvas = cv2.resize(canvas, None, fx=args.scale, fy=args.scale,
                            interpolation=cv2.INTER_AREA)
    from PIL import Image
    Image.fromarray(canvas[..., ::-1]).quantize(256, dither=Image.Dither.NONE).save(
        args.out, optimize=True)
    print(f'{args.out}: frame {args.idx} of {args.root}')


if __name__ == '__main__':
    main()
