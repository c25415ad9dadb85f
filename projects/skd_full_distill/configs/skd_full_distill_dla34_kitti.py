# Self-knowledge distillation on top of FULL supervision: SKD-WM3D's depth-guided teacher,
# uncertainty-weighted distillation and gradient modulation, with both SKDHeads trained on the
# KITTI 3D labels (mmdet3d's mono3d annotations) instead of the weak losses. The depth map is
# still needed (the teacher's input), not the LiDAR. See projects/skd_full_distill/README.md.
#   mim train mmdet3d projects/skd_full_distill/configs/skd_full_distill_dla34_kitti.py
_base_ = ['../../../configs/skd_wm3d_kitti.py', './_base_/full_supervision.py']

# the base with the fully supervised heads, its weak pipeline and data root with the 3D labels
# (./_base_/full_supervision.py)
model = _base_.full3d_model
train_pipeline = [dict(t, **_base_.full3d_transforms.get(t['type'], {}))
                  for t in _base_.train_pipeline]
train_dataloader = dict(dataset=dict(_delete_=True, data_root=_base_.data_root,
                                     pipeline=train_pipeline, **_base_.full3d_dataset))
