# As skd_orient_l1_synth.py, with the orientation weight at 1.0 (default 0.2) in both heads.
_base_ = ['./skd_orient_l1_synth.py']
orient_l1_w1 = dict(loss_weak3d=dict(loss_weights=dict(orient=1.0)))
model = dict(bbox_head=orient_l1_w1, teacher_head=orient_l1_w1)
