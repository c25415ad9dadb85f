# The shared 2D pretraining of the encoder (issue: accuracy on two CPU cores). Every KITTI
# method starts from an ImageNet-pretrained backbone; none can be downloaded here, so the
# encoder is pretrained once on the train split's 2D label boxes alone (heatmap + 2D box
# losses, SKDHead(supervision='2d'): weak-legal, nothing 3D and no depth map is read) over the
# range of scales the benchmark runs see, and every run starts from its backbone + neck
# (`tools/benchmarks/run_benchmarks.py` extracts them into encoder.pth for `load_from`).
_base_ = ['../skd_wm3d_synth.py']
backend_args = None
model = dict(bbox_head=dict(supervision='2d', loss_weak3d=None), teacher_neck=None,
             teacher_head=None, distill_loss=None, feature_distill_loss=None)
train_pipeline = [
    dict(type='LoadImageFromFileMono3D', backend_args=backend_args),
    dict(type='LoadAnnotations3D', with_bbox=True, with_label=True, with_attr_label=False,
         with_bbox_3d=False, with_label_3d=False, with_bbox_depth=False),
    dict(type='DepthRandomFlip3D', flip_ratio_bev_horizontal=0.5),
    dict(type='RandomScaleCrop', img_scale={{_base_.input_size}}, scale=(0.3, 0.8)),
    dict(type='DepthAffineResize', img_scale={{_base_.input_size}}, down_ratio=4),
    dict(type='PackSKDInputs', keys=['img', 'gt_bboxes', 'gt_bboxes_labels']),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
custom_hooks = [dict(type='NonFiniteLossHook')]
