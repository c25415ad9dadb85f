# Lever 3 (throughput) on run 6, the other side: the fully supervised student with the full-width
# ResNet-18 (base_channels 64, the CPU encoder before 2026-12-08; about four times the half
# width's encoder FLOPs for a third less learned per CPU minute, docs/benchmarks.md, "The levers
# on run 6").
_base_ = ['../full_supervision_synth.py']
model = dict(backbone=dict(base_channels=64), neck=dict(in_channels=[64, 128, 256, 512]))
