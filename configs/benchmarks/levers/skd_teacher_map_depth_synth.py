# Lever on run 1 (the teacher that knows depth): the teacher head's depth starts from the depth
# map at the cell, z = D_cell * exp(d) (SKDHead(depth_mode='map')), instead of the image-only
# geometric prior f H / h_2d; the student is unchanged (docs/benchmarks.md). Its run 5 (the
# teacher at test time) is levers/teacher_test_map_depth_synth.py.
_base_ = ['../../skd_wm3d_synth.py']
model = dict(teacher_head=dict(depth_mode='map'))
