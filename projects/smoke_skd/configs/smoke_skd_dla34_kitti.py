# SMOKE (mmdet3d's config: DLA-34 + DLANeck, GroupNorm, 1280x384, 72 epochs) trained WEAKLY with
# SKD-WM3D: 2D label boxes + a depth map per image, no 3D label. Mixed in on top of SMOKE's own
# config: the detector becomes SKDWM3D (shared encoder, depth teacher, distillation), both branches
# use SMOKESKDHead (SMOKE's head and SMOKECoder with the weak losses), GradModulationHook keeps
# the two branches in step. Meant for GPUs; see projects/smoke_skd/README.md.
#   mim train mmdet3d projects/smoke_skd/configs/smoke_skd_dla34_kitti.py
_base_ = ['mmdet3d::smoke/smoke_dla34_dlaneck_gn-all_4xb8-6x_kitti-mono3d.py']
custom_imports = dict(imports=['mmdet3d_skd', 'mmdet3d_skd.models.smoke_skd'],
                      allow_failed_imports=False)

class_names = ['Pedestrian', 'Cyclist', 'Car']
metainfo = dict(classes=class_names)
# KITTI class means (l, h, w), metres: SMOKECoder's base_dims and the weak losses' size prior.
dims_prior = [[0.84, 1.76, 0.66], [1.76, 1.74, 0.60], [3.88, 1.53, 1.63]]
data_root = 'data/kitti/'
input_size = (1280, 384)
backend_args = None

# SMOKE's head (as in mmdet3d's _base_/models/smoke.py) plus a second regression group of five
# channels: depth log-variance and the 2D box. Its first group is SMOKE's conv_regs.0, so a SMOKE
# checkpoint loads into it (load_from).
smoke_head = dict(
    type='SMOKESKDHead',
    num_classes=3,
    in_channels=64,
    dim_channel=[3, 4, 5],
    ori_channel=[6, 7],
    stacked_convs=0,
    feat_channels=64,
    use_direction_classifier=False,
    diff_rad_by_sin=False,
    pred_attrs=False,
    pred_velo=False,
    dir_offset=0,
    strides=None,
    group_reg_dims=(8, 5),
    cls_branch=(256, ),
    reg_branch=((256, ), (256, )),
    num_attrs=0,
    bbox_code_size=7,
    dir_branch=(),
    attr_branch=(),
    bbox_coder=dict(type='SMOKECoder', base_depth=(28.01, 16.32), base_dims=dims_prior,
                    code_size=7),
    loss_cls=dict(type='mmdet.GaussianFocalLoss', loss_weight=1.0),
    loss_bbox=dict(type='mmdet.L1Loss', reduction='mean', loss_weight=0.1),
    loss_giou2d=dict(type='mmdet.GIoULoss', loss_weight=1.0),
    loss_weak3d=dict(type='WeakMono3DLoss'),
    loss_dir=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
    loss_attr=None,
    conv_bias=True,
    dcn_on_last_conv=False)

model = dict(
    type='SKDWM3D',
    data_preprocessor=dict(type='SKDDataPreprocessor'),
    bbox_head=dict(_delete_=True, **smoke_head),
    teacher_neck=dict(type='DepthFusionNeck', in_channels=64, fusion='gated'),
    teacher_head=smoke_head,
    distill_loss=dict(type='UncertaintyDistillLoss', loss_weight=1.0, margin=0.0,
                      uncertainty='teacher'),
    feature_distill_loss=dict(type='UncertaintyDistillLoss', loss_weight=1.0,
                              uncertainty='teacher'),
    # pseudo points from every 2nd depth pixel, as configs/skd_wm3d_kitti.py
    pseudo_points=dict(depth_stride=2),
    # branch: 'student' (the image alone) or 'teacher' (needs depth maps at test time)
    test_cfg=dict(_delete_=True, branch='student', topk=100, local_max_kernel=3,
                  score_thr=0.25))

# SMOKE's pipelines with the weak annotations and the depth map. DepthAffineResize keeps cam2img
# in the network input's frame (it also records SMOKE's trans_mat and the previous cam2img).
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
    dataset=dict(type='WeakKittiDataset', weak=True, data_root=data_root,
                 pipeline=train_pipeline, metainfo=metainfo))
val_dataloader = dict(
    dataset=dict(type='WeakKittiDataset', data_root=data_root, pipeline=test_pipeline,
                 metainfo=metainfo))
test_dataloader = val_dataloader
# mmdet3d's KittiMetric numbers, rotated IoU on the CPU (no numba CUDA needed)
val_evaluator = dict(type='CPUKittiMetric', ann_file=data_root + 'kitti_infos_val.pkl')
test_evaluator = val_evaluator

custom_hooks = [
    dict(type='GradModulationHook', warmup_iters=1000, alpha=1.0, beta=0.5, k_min=0.2),
    # stop at the first NaN/inf loss, before the step, keeping last_good.pth
    dict(type='NonFiniteLossHook'),
]
# a fixed seed: --resume is exact only with a seed in the config (as configs/skd_wm3d_kitti.py)
randomness = dict(seed=0)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end={{_base_.max_epochs}}, by_epoch=True,
         milestones=[50], gamma=0.1),
]
# the weak losses can spike early on (boxes far from their points): clip as SKD-WM3D does
optim_wrapper = dict(clip_grad=dict(_delete_=True, max_norm=35, norm_type=2))
# every parameter gets a gradient in each step (tests/test_projects.py checks it): DDP need not
# search the graph for unused ones (SMOKE's config sets True)
find_unused_parameters = False
vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='Det3DLocalVisualizer', vis_backends=vis_backends, name='visualizer')
