# SKD-WM3D with SMOKE's DLA-34 + DLANeck encoder (GroupNorm, ImageNet weights): the student
# SKDHead on the image features, the depth-guided teacher (DepthFusionNeck + a second SKDHead),
# uncertainty-weighted distillation of predictions and features, pseudo points from the depth
# map for the weak losses (./skd_distill.py). Class order and size prior: KITTI's Pedestrian,
# Cyclist, Car.
_base_ = ['./skd_distill.py']
# KITTI class means (l, h, w), metres, in the order of class_names: configuration, not labels.
dims_prior = [[0.84, 1.76, 0.66], [1.76, 1.74, 0.60], [3.88, 1.53, 1.63]]

skd_head = dict(
    type='SKDHead',
    num_classes=3,
    in_channels=64,
    feat_channels=256,
    dims_prior=dims_prior,
    supervision='weak',
    loss_weak3d=dict(type='WeakMono3DLoss'))

model = dict(
    type='SKDWM3D',
    data_preprocessor=dict(
        type='SKDDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32),
    backbone=dict(
        type='DLANet',
        depth=34,
        in_channels=3,
        norm_cfg=dict(type='GN', num_groups=32),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='http://dl.yf.io/dla/models/imagenet/dla34-ba72cf86.pth')),
    neck=dict(
        type='DLANeck',
        in_channels=[16, 32, 64, 128, 256, 512],
        start_level=2,
        end_level=5,
        norm_cfg=dict(type='GN', num_groups=32)),
    bbox_head=skd_head,
    teacher_head=skd_head,
    **_base_.skd_distill,
    # branch: 'student' (the image alone) or 'teacher' (needs depth maps at test time)
    test_cfg=dict(branch='student', topk=100, local_max_kernel=3, score_thr=0.05))
