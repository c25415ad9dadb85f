# Run 1 (SKD-WM3D) through the own-data path: the synthetic world's 2D boxes and P2 exported
# as COCO jsons (tools/kitti_to_coco.py), converted (tools/convert_coco.py --out-dir
# data/synth_kitti), trained with configs/skd_wm3d_custom.py; scored with the KITTI metric
# against the world's 3D truth (WeakMono3DMetric's (c)). Commands: docs/own_data.md.
_base_ = ['../skd_wm3d_custom.py']

data_root = 'data/synth_kitti/'
image_root = 'training/image_2/'
depth_root = 'training/depth_2/'
class_names = ['Pedestrian', 'Cyclist', 'Car']  # run 1's order and KITTI's means
dims_prior = [[0.84, 1.76, 0.66], [1.76, 1.74, 0.60], [3.88, 1.53, 1.63]]
metainfo = dict(classes=class_names)

model = dict(bbox_head=dict(dims_prior=dims_prior), teacher_head=dict(dims_prior=dims_prior))
input_size = (384, 128)
# the base's pipeline with this depth_root
train_pipeline = [dict(t, depth_prefix=data_root + depth_root) if t['type'] == 'LoadDepthMap'
                  else t for t in _base_.train_pipeline]
train_dataloader = dict(dataset=dict(data_root=data_root, data_prefix=dict(img=image_root),
                                     pipeline=train_pipeline, metainfo=metainfo))
val_dataloader = dict(dataset=dict(data_root=data_root, data_prefix=dict(img=image_root),
                                   metainfo=metainfo))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'mono3d_infos_val.pkl',
                     depth_prefix=data_root + depth_root,
                     kitti_ann_file=data_root + 'kitti_infos_val.pkl')
test_evaluator = val_evaluator
