# Benchmark run 4: SKD-WM3D with plain distillation (no uncertainty weighting).
_base_ = ['../skd_wm3d_synth.py']
model = dict(distill_loss=dict(uncertainty='none'), feature_distill_loss=dict(uncertainty='none'))
