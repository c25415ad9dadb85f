# SMOKE (mmdet3d's config: DLA-34 + DLANeck, GroupNorm, 1280x384, 72 epochs) trained WEAKLY with
# SKD-WM3D: 2D label boxes + a depth map per image, no 3D label. The detector becomes SKDWM3D
# (shared encoder, depth teacher, distillation), both branches use SMOKESKDHead (SMOKE's head and
# SMOKECoder with the weak losses), GradModulationHook keeps the two branches in step. Meant for
# GPUs; see projects/smoke_skd/README.md.
#   mim train mmdet3d projects/smoke_skd/configs/smoke_skd_dla34_kitti.py
# Built from the parts mmdet3d's SMOKE config is built from: its model (./_base_), KITTI's data
# (here the weak data: 2D boxes and depth maps) and SMOKE's schedule, to which SKD-WM3D's adds a
# warm-up and gradient clipping (the weak losses can spike early on).
_base_ = [
    './_base_/smoke_skd_dla34.py',
    '../../../configs/_base_/datasets/kitti_weak_mono3d.py',
    '../../../configs/_base_/schedules/adam_72e.py',  # and configs/_base_/default_runtime.py
]
custom_imports = dict(imports=['mmdet3d_skd', 'projects.smoke_skd.smoke_skd'],
                      allow_failed_imports=False)

# every parameter gets a gradient in each step (tests/test_projects.py checks it): DDP need not
# search the graph for unused ones (SMOKE's config sets True)
find_unused_parameters = False
vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='Det3DLocalVisualizer', vis_backends=vis_backends, name='visualizer')
