# Benchmark run 3: SKD-WM3D without the GradModulationHook (all transfer coefficients 1.0).
_base_ = ['../skd_wm3d_synth.py']
custom_hooks = [dict(type='NonFiniteLossHook')]
