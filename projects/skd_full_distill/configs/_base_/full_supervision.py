# What full supervision changes in SKD-WM3D, for both configs of this project to apply to their
# base (under names that no other base defines): both heads trained on the 3D labels, which are
# loaded (mmdet3d's mono3d annotations: 3D boxes, projected centres, depths) and packed, and
# mmdet3d's KittiDataset (cam_instances: 3D boxes and the 2D boxes of their
# projections) instead of the weak one. The depth map is still loaded: the teacher's input.
full3d_model = dict(bbox_head=dict(supervision='full'), teacher_head=dict(supervision='full'))
full3d_transforms = dict(
    LoadAnnotations3D=dict(with_bbox_3d=True, with_label_3d=True, with_bbox_depth=True),
    PackSKDInputs=dict(keys=['img', 'gt_bboxes', 'gt_bboxes_labels', 'gt_bboxes_3d',
                             'gt_labels_3d', 'centers_2d', 'depths', 'depth_map']))
full3d_dataset = dict(type='KittiDataset', ann_file='kitti_infos_train.pkl',
                      data_prefix=dict(img='training/image_2'),
                      modality=dict(use_lidar=False, use_camera=True),
                      load_type='fov_image_based', test_mode=False,
                      metainfo=dict(classes=['Pedestrian', 'Cyclist', 'Car']),
                      box_type_3d='Camera', backend_args=None)
