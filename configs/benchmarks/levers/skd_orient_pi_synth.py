# Lever on run 1 (the length axis): the orientation term periodic in pi instead of pi/2, against
# the pseudo points' yaw with the length axis resolved by the class prior (yaw_obs), as the
# cosine 1 - cos(2 (yaw - yaw_obs)) at weight 0.2, in both heads (docs/benchmarks.md).
_base_ = ['../../skd_wm3d_synth.py']
orient_pi = dict(loss_weak3d=dict(orient_period=3.141592653589793, orient_kind='cos',
                                  loss_weights=dict(orient=0.2)))
model = dict(bbox_head=orient_pi, teacher_head=orient_pi)
