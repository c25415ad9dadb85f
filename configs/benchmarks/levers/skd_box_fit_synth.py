# Lever on run 1 (the length axis and the depth target): the pseudo points' yaw from the
# class-prior box searched over yaw against the points and the 2D box's width
# (yaw_rule='box_fit'), and the depth target at that box's centre (centre_rule='box'),
# instead of the L-shape fit and z_near + E / 2 (docs/benchmarks.md, "Weak depth targets").
_base_ = ['../../skd_wm3d_synth.py']
model = dict(pseudo_points=dict(yaw_rule='box_fit', centre_rule='box'))
