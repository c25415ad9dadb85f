# The embedded synthetic data set (tools/generate_synthetic.py, KITTI's layout), weakly
# supervised like KITTI, at a CPU-sized network input of 384x128.
_base_ = ['./kitti_weak_mono3d.py']

data_root = 'data/synth_kitti/'
input_size = (384, 128)

# KITTI's pipelines with every resize / crop at this input size
train_pipeline = [dict(t, img_scale=input_size) if 'img_scale' in t else t
                  for t in _base_.train_pipeline]
test_pipeline = [dict(t, img_scale=input_size) if 'img_scale' in t else t
                 for t in _base_.test_pipeline]
train_dataloader = dict(
    batch_size=8, num_workers=1,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8, num_workers=1,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'kitti_infos_val.pkl')
test_evaluator = val_evaluator
