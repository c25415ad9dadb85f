# KITTI, weakly supervised: the 2D label boxes and a depth map per image (training/depth_2,
# tools/generate_depth.py), no 3D label; network input 1280x384. Scored with mmdet3d's KITTI
# metric on the CPU.
_base_ = ['mmdet3d::_base_/datasets/kitti-mono3d.py']

class_names = ['Pedestrian', 'Cyclist', 'Car']
metainfo = dict(classes=class_names)
data_root = 'data/kitti/'
input_size = (1280, 384)
backend_args = None

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
    batch_size=8,
    num_workers=4,
    dataset=dict(type='WeakKittiDataset', weak=True, data_root=data_root,
                 pipeline=train_pipeline, metainfo=metainfo))
val_dataloader = dict(dataset=dict(type='WeakKittiDataset', data_root=data_root,
                                   pipeline=test_pipeline, metainfo=metainfo))
test_dataloader = val_dataloader
# Same numbers as mmdet3d's KittiMetric, rotated IoU on the CPU (no numba CUDA needed).
val_evaluator = dict(type='CPUKittiMetric', ann_file=data_root + 'kitti_infos_val.pkl',
                     metric='bbox', backend_args=backend_args)
test_evaluator = val_evaluator

vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
# Det3DLocalVisualizer + projection with ori_cam2img on the original image, a BEV panel, and
# no crash on images without detections (see mmdet3d_skd/visualization.py)
visualizer = dict(type='SKDLocalVisualizer', vis_backends=vis_backends, name='visualizer')
