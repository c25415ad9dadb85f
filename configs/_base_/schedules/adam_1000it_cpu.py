# The 72-epoch schedule cut to 1000 iterations for a 2-core CPU (about 15 minutes at batch 8):
# iteration-based, lr 1e-3, a 100-iteration warm-up, x0.1 at 80 %, one checkpoint at the end;
# GradModulationHook warms up over 200 iterations.
_base_ = ['./adam_72e.py']

max_iters = 1000
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[int(max_iters * 0.8)], gamma=0.1),
]
optim_wrapper = dict(optimizer=dict(lr=1e-3))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=max_iters, by_epoch=False))
log_processor = dict(by_epoch=False)

custom_hooks = [
    dict(type='GradModulationHook', warmup_iters=200, alpha=1.0, beta=0.5, k_min=0.2),
    dict(type='NonFiniteLossHook'),
]
