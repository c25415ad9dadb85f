# The CPU-sized encoder (instead of DLA-34: mmcv's CPU deformable convolution is too slow for a
# CPU run), shared by SKD-WM3D's CPU configs and the SMOKE peer: a half-width ResNet-18 + SECONDFPN.
# Half width (base_channels 32, about a quarter of the full width's FLOPs) learns more per CPU
# minute: run 6 at 12 minutes of one core 2.67 against 1.79 Car 3D AP40@0.5 (docs/benchmarks.md,
# "The levers on run 6"; configs/benchmarks/levers/full_full_width_synth.py is the full width).
# Every ResNet stage is brought to stride 4 and concatenated (mmdet3d's SECONDFPN, 4 x 16
# channels, like DLA's aggregation): trained from scratch, the skips let the heatmap learn far
# sooner than CenterNet's skip-free deconvolution neck; unlike an FPN whose coarser outputs go
# unused, no parameter is left without a gradient (DDP). A config takes it as
# backbone=dict(_delete_=True, **_base_.r18_secondfpn.backbone) (and the neck alike).
r18_secondfpn = dict(
    backbone=dict(type='mmdet.ResNet', depth=18, base_channels=32, num_stages=4,
                  out_indices=(0, 1, 2, 3),
                  norm_cfg=dict(type='BN'), norm_eval=False, style='pytorch', init_cfg=None),
    neck=dict(type='SECONDFPN', in_channels=[32, 64, 128, 256], out_channels=[16, 16, 16, 16],
              upsample_strides=[1, 2, 4, 8], norm_cfg=dict(type='BN', eps=1e-3, momentum=0.01)))
