# SKD-WM3D on your own images: a COCO json of 2D boxes + camera intrinsics, converted by
# tools/convert_coco.py, and a depth map per image (tools/generate_depth.py --info ...).
# Edit the block below (tools/convert_coco.py prints class_names and dims_prior); the model,
# losses, hooks and schedule come from the base. docs/own_data.md walks through it.
#   mim train mmdet3d configs/skd_wm3d_custom.py
# The base is the CPU-sized synthetic config (ResNet-18 + SECONDFPN, 1000 iterations); on GPUs
# use './skd_wm3d_kitti.py' (DLA-34, 72 epochs) and input_size = (1280, 384).
_base_ = ['./skd_wm3d_synth.py']

# ------------------------------------------------------------------ your data (edit these)
data_root = 'data/my_data/'    # holds mono3d_infos_{train,val}.pkl (tools/convert_coco.py)
image_root = 'images/'         # the json file_names are relative to data_root + image_root
depth_root = 'depth/'          # depth maps: data_root + depth_root + <file_name stem>.png
class_names = ['Car', 'Pedestrian', 'Cyclist']
# mean (l, h, w) in metres per class, in the order of class_names (printed by the converter;
# KITTI and nuScenes means: mmdet3d_skd/datasets/size_priors.py)
dims_prior = [[3.88, 1.53, 1.63], [0.84, 1.76, 0.66], [1.76, 1.74, 0.60]]
input_size = (384, 128)        # network input (w, h); keep your images' aspect ratio
# ------------------------------------------------------------------------------------------

metainfo = dict(classes=class_names)
backend_args = None
model = dict(
    bbox_head=dict(num_classes=len(class_names), dims_prior=dims_prior),
    teacher_head=dict(num_classes=len(class_names), dims_prior=dims_prior))

# the base's pipelines at this input size, the depth maps read from depth_root
train_pipeline = [
    dict(t, depth_prefix=data_root + depth_root) if t['type'] == 'LoadDepthMap' else
    dict(t, img_scale=input_size) if 'img_scale' in t else t
    for t in _base_.train_pipeline]
test_pipeline = [dict(t, img_scale=input_size) if 'img_scale' in t else t
                 for t in _base_.test_pipeline]
train_dataloader = dict(
    dataset=dict(type='WeakMono3DDataset', data_root=data_root,
                 ann_file='mono3d_infos_train.pkl', data_prefix=dict(img=image_root),
                 pipeline=train_pipeline, metainfo=metainfo))
val_dataloader = dict(
    dataset=dict(type='WeakMono3DDataset', data_root=data_root,
                 ann_file='mono3d_infos_val.pkl', data_prefix=dict(img=image_root),
                 pipeline=test_pipeline, metainfo=metainfo))
test_dataloader = val_dataloader
# (a) 2D AP of the projected 3D boxes, (b) depth-map agreement; (c) the KITTI metric too when
# the val split has 3D labels: kitti_ann_file='<KITTI-layout info file of the same images>'
val_evaluator = dict(_delete_=True, type='WeakMono3DMetric',
                     ann_file=data_root + 'mono3d_infos_val.pkl',
                     depth_prefix=data_root + depth_root, backend_args=backend_args)
test_evaluator = val_evaluator
