# skd_full_distill_dla34_kitti.py sized for a CPU on the generated synthetic data set: the encoder,
# input size and schedule of configs/skd_wm3d_synth.py, with the fully supervised heads and
# mmdet3d's mono3d annotations.
#   mim train mmdet3d projects/skd_full_distill/configs/skd_full_distill_r18_synth.py
_base_ = ['../../../configs/skd_wm3d_synth.py']

data_root = 'data/synth_kitti/'
input_size = (384, 128)
backend_args = None

model = dict(
    bbox_head=dict(supervision='full'),
    teacher_head=dict(supervision='full'))

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
train_dataloader = dict(
    dataset=dict(_delete_=True, type='KittiDataset', data_root=data_root,
                 ann_file='kitti_infos_train.pkl', data_prefix=dict(img='training/image_2'),
                 pipeline=train_pipeline, modality=dict(use_lidar=False, use_camera=True),
                 load_type='fov_image_based', test_mode=False,
                 metainfo=dict(classes=['Pedestrian', 'Cyclist', 'Car']),
                 box_type_3d='Camera', backend_args=backend_args))
