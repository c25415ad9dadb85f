# Run 5 of the lever levers/skd_teacher_map_depth_synth.py: its teacher branch at test time
# (depth maps at test time), the teacher head's depth from the depth map at the cell.
_base_ = ['../teacher_test_synth.py']
model = dict(teacher_head=dict(depth_mode='map'))
