# Lever on run 1 (the length axis): the orientation term periodic in pi instead of pi/2, against
# the pseudo points' yaw with the length axis resolved by the class prior (yaw_obs), in both
# heads. With period pi/2 the term has a maximum at 45 degrees between the two axes, so a run
# whose yaws start near the swapped axis stays there (docs/benchmarks.md, error breakdown).
_base_ = ['../../skd_wm3d_synth.py']
orient_pi = dict(loss_weak3d=dict(orient_period=3.141592653589793))
model = dict(bbox_head=orient_pi, teacher_head=orient_pi)
