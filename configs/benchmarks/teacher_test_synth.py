# Benchmark run 5: test the TEACHER branch (depth maps at test time) of a run-1 checkpoint:
# how much the depth branch knows. Training settings are run 1's.
_base_ = ['../skd_wm3d_synth.py']
backend_args = None
model = dict(test_cfg=dict(branch='teacher'))
test_pipeline = [
    dict(type='LoadImageFromFileMono3D', backend_args=backend_args),
    dict(type='LoadDepthMap', backend_args=backend_args),
    dict(type='DepthAffineResize', img_scale={{_base_.input_size}}, down_ratio=4),
    dict(type='PackSKDInputs', keys=['img', 'depth_map']),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
