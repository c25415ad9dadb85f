"""Real KITTI frames through mmdet3d's own KittiDataset and mono3d pipeline."""
import numpy as np

from mmdet3d.datasets import KittiDataset

CLASSES = ['Pedestrian', 'Cyclist', 'Car']


def mono3d_train_pipeline():
    return [
        dict(type='LoadImageFromFileMono3D'),
        dict(type='LoadAnnotations3D', with_bbox=True, with_label=True, with_attr_label=False,
             with_bbox_3d=True, with_label_3d=True, with_bbox_depth=True),
        dict(type='Resize', scale=(1242, 375), keep_ratio=True),
        dict(type='RandomFlip3D', flip_ratio_bev_horizontal=0.0),
        dict(type='Pack3DDetInputs', keys=['img', 'gt_bboxes', 'gt_bboxes_labels',
                                           'gt_bboxes_3d', 'gt_labels_3d', 'centers_2d',
                                           'depths']),
    ]


def test_kitti_dataset_mono3d_pipeline_loads_a_real_frame(kitti_real):
    import mmdet3d_skd  # noqa: F401  (our import must not disturb mmdet3d's own path)
    ds = KittiDataset(
        data_root=str(kitti_real / 'tests'), ann_file='kitti_infos_train.pkl',
        data_prefix=dict(img='training/image_2'), pipeline=mono3d_train_pipeline(),
        # this v2 info file has no cam_instances, which fov_image_based would read
        modality=dict(use_lidar=False, use_camera=True), load_type='frame_based',
        metainfo=dict(classes=CLASSES), box_type_3d='Camera', test_mode=False)
    assert len(ds) == 1
    item = ds[0]
    img = item['inputs']['img']
    assert img.shape[0] == 3 and img.shape[1] <= 375 and img.shape[2] <= 1242
    gt3d = item['data_samples'].gt_instances_3d
    assert gt3d.labels_3d.tolist() == [0]  # frame 000000: one Pedestrian
    assert gt3d.bboxes_3d.tensor.shape == (1, 7)
    cam2img = np.array(item['data_samples'].metainfo['cam2img'])
    assert cam2img.shape == (4, 4) and cam2img[0, 0] > 700
    # the 2D box is the KITTI label box of instances[0].bbox, resized with the image
    sx, sy = item['data_samples'].metainfo['scale_factor']
    assert np.allclose(item['data_samples'].gt_instances.bboxes[0].numpy(),
                       np.array([712.4, 143.0, 810.73, 307.92]) * [sx, sy, sx, sy], atol=0.05)
