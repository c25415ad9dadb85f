# SKD-WM3D sized for a 2-core CPU on the embedded synthetic data set (tools/generate_synthetic.py):
# a ResNet-18 + SECONDFPN (all stages at stride 4) at 384x128 instead of DLA-34 at 1280x384
# (mmcv's CPU deformable convolution is too slow for a CPU run), the synthetic data root and a
# short schedule.
# Everything else (method, losses, hook, weak data path) comes from skd_wm3d_kitti.py.
#   mim train mmdet3d configs/skd_wm3d_synth.py
_base_ = ['./skd_wm3d_kitti.py']

data_root = 'data/synth_kitti/'
input_size = (384, 128)
backend_args = None

model = dict(
    backbone=dict(_delete_=True, type='mmdet.ResNet', depth=18, num_stages=4,
                  out_indices=(0, 1, 2, 3), norm_cfg=dict(type='BN'), norm_eval=False,
                  style='pytorch', init_cfg=None),
    # every ResNet stage brought to stride 4 and concatenated (mmdet3d's SECONDFPN, 4 x 16
    # channels, like DLA's aggregation): trained from scratch, the skips let the heatmap learn
    # far sooner than CenterNet's skip-free deconvolution neck; unlike an FPN whose coarser
    # outputs go unused, no parameter is left without a gradient (DDP); docs/benchmarks.md
    neck=dict(_delete_=True, type='SECONDFPN', in_channels=[64, 128, 256, 512],
              out_channels=[16, 16, 16, 16], upsample_strides=[1, 2, 4, 8],
              norm_cfg=dict(type='BN', eps=1e-3, momentum=0.01)),
    bbox_head=dict(feat_channels=64),
    teacher_head=dict(feat_channels=64))

# The base pipelines with the CPU input size (mmengine cannot edit a list item of a base).
train_pipeline = [
    dict(type='LoadImageFromFileMono3D', backend_args=backend_args),
    dict(type='LoadAnnotations3D', with_bbox=True, with_label=True, with_attr_label=False,
         with_bbox_3d=False, with_label_3d=False, with_bbox_depth=False),
    dict(type='LoadDepthMap', backend_args=backend_args),
    dict(type='DepthRandomFlip3D', flip_ratio_bev_horizontal=0.5),
    dict(type='RandomShiftScale', shift_scale=(0.2, 0.4), aug_prob=0.3),
    dict(type='DepthAffineResize', img_scale=input_size, down_ratio=4),
    dict(type='PackSKDInputs', keys=['img', 'gt_bboxes', 'gt_bboxes_labels', 'depth_map']),
]
test_pipeline = [
    dict(type='LoadImageFromFileMono3D', backend_args=backend_args),
    dict(type='DepthAffineResize', img_scale=input_size, down_ratio=4),
    dict(type='PackSKDInputs', keys=['img']),
]
train_dataloader = dict(
    batch_size=8, num_workers=1,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8, num_workers=1,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'kitti_infos_val.pkl')
test_evaluator = val_evaluator

custom_hooks = [
    dict(type='GradModulationHook', warmup_iters=200, alpha=1.0, beta=0.5, k_min=0.2),
    dict(type='NonFiniteLossHook'),
]

# Schedule: iteration-based, sized for about 15 minutes on 2 cores (batch 8).
max_iters = 1000
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[int(max_iters * 0.8)], gamma=0.1),
]
optim_wrapper = dict(optimizer=dict(lr=1e-3))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=max_iters, by_epoch=False))
log_processor = dict(by_epoch=False)
