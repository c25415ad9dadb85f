# SMOKE-SKD's model: SMOKE's (mmdet3d's _base_/models/smoke.py: DLA-34 + DLANeck, GroupNorm)
# made an SKDWM3D (shared encoder, depth teacher, distillation) whose two branches are
# SMOKESKDHead (SMOKE's head and SMOKECoder with the weak losses).
_base_ = ['mmdet3d::_base_/models/smoke.py', '../../../../configs/_base_/models/skd_distill.py']

# KITTI class means (l, h, w), metres: SMOKECoder's base_dims and the weak losses' size prior.
dims_prior = [[0.84, 1.76, 0.66], [1.76, 1.74, 0.60], [3.88, 1.53, 1.63]]

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
    teacher_head=smoke_head,
    **_base_.skd_distill,
    # branch: 'student' (the image alone) or 'teacher' (needs depth maps at test time)
    test_cfg=dict(_delete_=True, branch='student', topk=100, local_max_kernel=3,
                  score_thr=0.25))
