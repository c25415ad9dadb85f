# skd_full_distill_dla34_kitti.py sized for a CPU on the generated synthetic data set: the encoder,
# input size and schedule of configs/skd_wm3d_synth.py, with the fully supervised heads and
# mmdet3d's mono3d annotations.
#   mim train mmdet3d projects/skd_full_distill/configs/skd_full_distill_r18_synth.py
_base_ = ['../../../configs/skd_wm3d_synth.py', './_base_/full_supervision.py']

# the base with the fully supervised heads, its weak pipeline and data root with the 3D labels
# (./_base_/full_supervision.py)
model = _base_.full3d_model
train_pipeline = [dict(t, **_base_.full3d_transforms.get(t['type'], {}))
                  for t in _base_.train_pipeline]
train_dataloader = dict(dataset=dict(_delete_=True, data_root=_base_.data_root,
                                     pipeline=train_pipeline, **_base_.full3d_dataset))
