# The paper's schedule (SMOKE's): Adam 2.5e-4, 72 epochs, x0.1 at epoch 50, a 500-iteration
# linear warm-up, gradients clipped at 35. GradModulationHook warms up over 1000 iterations.
_base_ = ['../default_runtime.py']

max_epochs = 72
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[50],
         gamma=0.1),
]
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=2.5e-4),
                     clip_grad=dict(max_norm=35, norm_type=2))
auto_scale_lr = dict(enable=False, base_batch_size=32)

custom_hooks = [
    dict(type='GradModulationHook', warmup_iters=1000, alpha=1.0, beta=0.5, k_min=0.2),
    # stop at the first NaN/inf loss, before the step, keeping last_good.pth
    dict(type='NonFiniteLossHook'),
]
