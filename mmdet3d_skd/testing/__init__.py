"""Test fixtures shared by ``tests/`` and ``tools/benchmarks/`` (as ``mmdet.testing`` and
``mmdet3d.testing``): fake KITTI validation sets and detections (:mod:`.fake_kitti_results`).

``import mmdet3d_skd`` does not load this package.
"""
