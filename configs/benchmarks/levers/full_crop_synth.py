# Lever 1 (resolution) of the accuracy issue, fully supervised: train on random 384x128 crops
# at 0.5-0.8 of the native resolution (RandomScaleCrop; cam2img follows the crop) and test on
# the whole image at 0.644 (800x244), instead of the whole image squeezed to 384x128 (0.309).
# Same compute per training iteration; a car is 2.1x as many pixels tall.
_base_ = ['../full_supervision_synth.py']
backend_args = None
test_size = (800, 244)
train_pipeline = [
    dict(type='LoadImageFromFileMono3D', backend_args=backend_args),
    dict(type='LoadAnnotations3D', with_bbox=True, with_label=True, with_attr_label=False,
         with_bbox_3d=True, with_label_3d=True, with_bbox_depth=True),
    dict(type='DepthRandomFlip3D', flip_ratio_bev_horizontal=0.5),
    dict(type='RandomScaleCrop', img_scale={{_base_.input_size}}, scale=(0.5, 0.8)),
    dict(type='DepthAffineResize', img_scale={{_base_.input_size}}, down_ratio=4),
    dict(type='PackSKDInputs', keys=['img', 'gt_bboxes', 'gt_bboxes_labels', 'gt_bboxes_3d',
                                     'gt_labels_3d', 'centers_2d', 'depths']),
]
test_pipeline = [
    dict(type='LoadImageFromFileMono3D', backend_args=backend_args),
    dict(type='DepthAffineResize', img_scale=test_size, down_ratio=4),
    dict(type='PackSKDInputs', keys=['img']),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
