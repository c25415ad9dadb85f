"""Offline tools, run before training and never by it: the synthetic KITTI-format data
generator (:mod:`.synthetic`, ``tools/generate_synthetic.py``) and the depth-map maker
(:mod:`.depth_estimators`, ``tools/generate_depth.py``).

``import mmdet3d_skd`` does not load this package; nothing else under ``mmdet3d_skd`` imports it.
Both write KITTI's files through :mod:`mmdet3d_skd.datasets.kitti_format`.
"""
