# Lever 3 (throughput) on run 6: the same fully supervised student with a half-width
# ResNet-18 (base_channels 32, about a quarter of the encoder's FLOPs; the neck's outputs and
# the head unchanged), i.e. about twice the iterations in the same minutes
# (docs/benchmarks.md, "The levers on run 6").
_base_ = ['../full_supervision_synth.py']
model = dict(backbone=dict(base_channels=32), neck=dict(in_channels=[32, 64, 128, 256]))
