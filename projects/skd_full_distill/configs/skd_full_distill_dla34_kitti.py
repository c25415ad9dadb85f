# Self-knowledge distillation on top of FULL supervision: SKD-WM3D's depth-guided teacher,
# uncertainty-weighted distillation and gradient modulation, with both SKDHeads trained on the
# KITTI 3D labels (mmdet3d's mono3d annotations) instead of the weak losses. The depth map is
# still needed (the teacher's input), not the LiDAR. See projects/skd_full_distill/README.md.
#   mim train mmdet3d projects/skd_full_distill/configs/skd_full_distill_dla34_kitti.py
_base_ = ['../../../configs/skd_wm3d_kitti.py']

input_size = (1280, 384)
backend_args = None

model = dict(
    bbox_head=dict(supervision='full'),
    teacher_head=dict(supervision='full'))

# mmdet3d's mono3d training pipeline (3D boxes, projected centres, depths) with the depth map
# and the depth-aware flip / affine resize.
train_pipeline = [
    dict(type='LoadImageFromFileMono3D', backend_args=backend_args),
    dict(type='LoadAnnotations3D', with_bbox=True, with_label=True, with_attr_label=False,
         with_bbox_3d=True, with_label_3d=True, with_bbox_depth=True),
    dict(type='LoadDepthMap', backend_args=backend_args),
    dict(type='DepthRandomFlip3D', flip_ratio_bev_horizontal=0.5),
    dict(type='RandomShiftScale', shift_scale=(0.2, 0.4), aug_prob=0.3),
    dict(type='DepthAffineResize', img_scale=input_size, down_ratio=4),
    dict(type='PackSKDInputs',
         keys=['img', 'gt_bboxes', 'gt_bboxes_labels', 'gt_bboxes_3d', 'gt_labels_3d',
               'centers_2d', 'depths', 'depth_map']),
]
# mmdet3d's KittiDataset (cam_instances: 3D boxes and the 2D boxes of their projections)
train_dataloader = dict(
    dataset=dict(_delete_=True, type='KittiDataset', data_root='data/kitti/',
                 ann_file='kitti_infos_train.pkl', data_prefix=dict(img='training/image_2'),
                 pipeline=train_pipeline, modality=dict(use_lidar=False, use_camera=True),
                 load_type='fov_image_based', test_mode=False,
                 metainfo=dict(classes=['Pedestrian', 'Cyclist', 'Car']),
                 box_type_3d='Camera', backend_args=backend_args))
