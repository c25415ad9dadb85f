# SKD-WM3D sized for a 2-core CPU on the embedded synthetic data set (tools/generate_synthetic.py):
# a ResNet-18 + SECONDFPN (all stages at stride 4) at 384x128 instead of DLA-34 at 1280x384
# (mmcv's CPU deformable convolution is too slow for a CPU run), the synthetic data root and a
# short schedule (1000 iterations, about 15 minutes on 2 cores at batch 8).
# The method, losses, hook and weak data path are skd_wm3d_kitti.py's.
#   mim train mmdet3d configs/skd_wm3d_synth.py
_base_ = [
    './_base_/models/skd_wm3d_r18.py',
    './_base_/datasets/synth_kitti_weak_mono3d.py',
    './_base_/schedules/adam_1000it_cpu.py',  # and ./_base_/default_runtime.py
]
