# Benchmark run 6 (the upper bound): the same student detector trained with the 3D labels
# (mmdet3d's KittiDataset mono3d path: projected-box 2D targets, 3D centres, depths, boxes).
_base_ = ['../skd_wm3d_synth.py']
backend_args = None
model = dict(bbox_head=dict(supervision='full'), teacher_neck=None, teacher_head=None,
             distill_loss=None, feature_distill_loss=None)
train_pipeline = [
    dict(type='LoadImageFromFileMono3D', backend_args=backend_args),
    dict(type='LoadAnnotations3D', with_bbox=True, with_label=True, with_attr_label=False,
         with_bbox_3d=True, with_label_3d=True, with_bbox_depth=True),
    dict(type='DepthRandomFlip3D', flip_ratio_bev_horizontal=0.5),
    dict(type='RandomShiftScale', shift_scale=(0.2, 0.4), aug_prob=0.3),
    dict(type='DepthAffineResize', img_scale={{_base_.input_size}}, down_ratio=4),
    dict(type='PackSKDInputs', keys=['img', 'gt_bboxes', 'gt_bboxes_labels', 'gt_bboxes_3d',
                                     'gt_labels_3d', 'centers_2d', 'depths']),
]
# weak=False: WeakKittiDataset is exactly mmdet3d's KittiDataset (3D labels kept)
train_dataloader = dict(dataset=dict(weak=False,
                                     pipeline=train_pipeline))
custom_hooks = [dict(type='NonFiniteLossHook')]
