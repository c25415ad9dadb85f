# Benchmark run 2: the student alone with the weak losses (no teacher, no distillation, no hook).
_base_ = ['../skd_wm3d_synth.py']
model = dict(teacher_neck=None, teacher_head=None, distill_loss=None,
             feature_distill_loss=None)
custom_hooks = [dict(type='NonFiniteLossHook')]
