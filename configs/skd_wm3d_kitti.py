# SKD-WM3D on KITTI (the paper's setting): weak supervision from the KITTI 2D label boxes and
# a depth map per image (data/kitti/training/depth_2, see tools/generate_depth.py); SMOKE's
# DLA-34 + DLANeck encoder at 1280x384, Pedestrian/Cyclist/Car, 72 epochs. Meant for GPUs.
#   mim train mmdet3d configs/skd_wm3d_kitti.py
#   mim test mmdet3d configs/skd_wm3d_kitti.py --checkpoint work_dirs/skd_wm3d_kitti/epoch_72.pth
_base_ = [
    './_base_/models/skd_wm3d_dla34.py',
    './_base_/datasets/kitti_weak_mono3d.py',
    './_base_/schedules/adam_72e.py',  # and ./_base_/default_runtime.py
]
