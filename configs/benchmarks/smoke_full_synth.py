# Benchmark run 7 (a known peer): mmdet3d's own SMOKE (SMOKEMono3D, SMOKEMono3DHead, SMOKECoder,
# its pipeline with RandomFlip3D / AffineResize / Pack3DDetInputs), fully supervised, with run 6's
# encoder (ResNet-18 + SECONDFPN), data, input size and schedule. Only the encoder, head widths,
# data root and schedule differ from mmdet3d's SMOKE config. (mmengine refuses keys repeated
# across two bases, so the synth settings are restated rather than inherited.)
_base_ = ['mmdet3d::smoke/smoke_dla34_dlaneck_gn-all_4xb8-6x_kitti-mono3d.py']
custom_imports = dict(imports=['mmdet3d_skd'], allow_failed_imports=False)  # CPUKittiMetric

data_root = 'data/synth_kitti/'
input_size = (384, 128)
backend_args = None

model = dict(
    backbone=dict(_delete_=True, type='mmdet.ResNet', depth=18, num_stages=4,
                  out_indices=(0, 1, 2, 3), norm_cfg=dict(type='BN'), norm_eval=False,
                  style='pytorch', init_cfg=None),
    neck=dict(_delete_=True, type='SECONDFPN', in_channels=[64, 128, 256, 512],
              out_channels=[16, 16, 16, 16], upsample_strides=[1, 2, 4, 8],
              norm_cfg=dict(type='BN', eps=1e-3, momentum=0.01)),
    bbox_head=dict(cls_branch=(64, ), reg_branch=((64, ), )))

train_pipeline = [
    dict(type='LoadImageFromFileMono3D', backend_args=backend_args),
    dict(type='LoadAnnotations3D', with_bbox=True, with_label=True, with_attr_label=False,
         with_bbox_3d=True, with_label_3d=True, with_bbox_depth=True),
    dict(type='RandomFlip3D', flip_ratio_bev_horizontal=0.5),
    dict(type='RandomShiftScale', shift_scale=(0.2, 0.4), aug_prob=0.3),
    dict(type='AffineResize', img_scale=input_size, down_ratio=4),
    dict(type='Pack3DDetInputs', keys=['img', 'gt_bboxes', 'gt_bboxes_labels', 'gt_bboxes_3d',
                                       'gt_labels_3d', 'centers_2d', 'depths']),
]
test_pipeline = [
    dict(type='LoadImageFromFileMono3D', backend_args=backend_args),
    dict(type='AffineResize', img_scale=input_size, down_ratio=4),
    dict(type='Pack3DDetInputs', keys=['img']),
]
# WeakKittiDataset(weak=False) is mmdet3d's KittiDataset (3D labels kept) plus one fix: a frame
# without objects no longer crashes KittiDataset._remove_dontcare (IndexError on a 0-d array;
# the synthetic set has such frames)
train_dataloader = dict(batch_size=8, num_workers=1,
                        dataset=dict(type='WeakKittiDataset', weak=False, data_root=data_root,
                                     pipeline=train_pipeline))
val_dataloader = dict(batch_size=8, num_workers=1,
                      dataset=dict(type='WeakKittiDataset', weak=False, data_root=data_root,
                                    pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='CPUKittiMetric', ann_file=data_root + 'kitti_infos_val.pkl')
test_evaluator = val_evaluator

# configs/skd_wm3d_synth.py's schedule
randomness = dict(seed=0)
max_iters = 1000
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[int(max_iters * 0.8)], gamma=0.1),
]
optim_wrapper = dict(_delete_=True, type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-3),
                     clip_grad=dict(max_norm=35, norm_type=2))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=max_iters, by_epoch=False))
log_processor = dict(by_epoch=False)
