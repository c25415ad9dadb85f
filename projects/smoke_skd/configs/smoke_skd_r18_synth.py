# SMOKE-SKD (smoke_skd_dla34_kitti.py) sized for a CPU on the generated synthetic data set
# (tools/generate_synthetic.py): ResNet-18 + CenterNet's deconvolution neck without DCN at 384x128
# instead of DLA-34 at 1280x384, 64-channel head branches, an iteration-based short schedule.
#   mim train mmdet3d projects/smoke_skd/configs/smoke_skd_r18_synth.py
_base_ = [
    './_base_/smoke_skd_dla34.py',
    '../../../configs/_base_/datasets/synth_kitti_weak_mono3d.py',
    '../../../configs/_base_/schedules/adam_1000it_cpu.py',  # and the runtime
]
custom_imports = dict(imports=['mmdet3d_skd', 'projects.smoke_skd.smoke_skd'],
                      allow_failed_imports=False)

model = dict(
    backbone=dict(_delete_=True, type='mmdet.ResNet', depth=18, num_stages=4,
                  out_indices=(3, ), norm_cfg=dict(type='BN'), norm_eval=False,
                  style='pytorch', init_cfg=None),
    neck=dict(_delete_=True, type='mmdet.CTResNetNeck', in_channels=512,
              num_deconv_filters=(128, 64, 64), num_deconv_kernels=(4, 4, 4),
              use_dcn=False),
    bbox_head=dict(cls_branch=(64, ), reg_branch=((64, ), (64, ))),
    teacher_head=dict(cls_branch=(64, ), reg_branch=((64, ), (64, ))))

train_dataloader = dict(persistent_workers=False)
val_dataloader = dict(persistent_workers=False)
test_dataloader = val_dataloader

# the CPU schedule stretched to 1500 iterations
max_iters = 1500
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    _base_.param_scheduler[0],
    dict(_base_.param_scheduler[1], end=max_iters, milestones=[int(max_iters * 0.8)])]
default_hooks = dict(checkpoint=dict(interval=max_iters))

find_unused_parameters = False  # as smoke_skd_dla34_kitti.py
vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='Det3DLocalVisualizer', vis_backends=vis_backends, name='visualizer')
