# Lever on run 1 (the length axis): the orientation term periodic in pi against the pseudo
# points' prior-resolved yaw (yaw_obs), as an L1 on the wrapped angle (kind='l1'), in both
# heads. The cosine term's gradient vanishes on the wrong axis, so a yaw that starts there
# stays there; the L1 pulls equally hard at every distance (docs/benchmarks.md).
_base_ = ['../../skd_wm3d_synth.py']
orient_l1 = dict(loss_weak3d=dict(orient_period=3.141592653589793, orient_kind='l1'))
model = dict(bbox_head=orient_l1, teacher_head=orient_l1)
