# Benchmark run 7 (a known peer): mmdet3d's own SMOKE (SMOKEMono3D, SMOKEMono3DHead, SMOKECoder,
# its pipeline with RandomFlip3D / AffineResize / Pack3DDetInputs), fully supervised, with run 6's
# encoder (ResNet-18 + SECONDFPN), data, input size and schedule. Only the encoder, head widths,
# data root and schedule differ from mmdet3d's SMOKE config, which is built from these bases
# (its pipelines at this input size below); the schedule is configs/skd_wm3d_synth.py's.
_base_ = [
    'mmdet3d::_base_/datasets/kitti-mono3d.py',
    'mmdet3d::_base_/models/smoke.py',
    '../_base_/models/r18_secondfpn.py',
    '../_base_/schedules/adam_1000it_cpu.py',  # and the runtime (imports mmdet3d_skd)
]

data_root = 'data/synth_kitti/'
input_size = (384, 128)
backend_args = None

model = dict(
    backbone=dict(_delete_=True, **_base_.r18_secondfpn.backbone),
    neck=dict(_delete_=True, **_base_.r18_secondfpn.neck),
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

# SMOKE's own settings: unused parameters searched for, no SKD hook
find_unused_parameters = True
custom_hooks = []
