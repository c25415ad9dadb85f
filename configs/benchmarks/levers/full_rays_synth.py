# Lever on run 6: the same fully supervised student with SKDHead(camera_rays=True), each cell's
# camera ray (X/Z, Y/Z through cam2img) as two more input channels of the regression trunk, so
# that depth can use where a car stands in the image, not only how tall its box is
# (docs/benchmarks.md, "The levers on run 6").
_base_ = ['../full_supervision_synth.py']
model = dict(bbox_head=dict(camera_rays=True))
