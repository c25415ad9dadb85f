# Run 1 with the orientation term as it was before 2026-12-07: periodic in pi/2 (the raw
# L-shape fit), the cosine, weight 0.2, in both heads; with it a weak run may settle with its
# cars' length and width swapped (docs/benchmarks.md).
_base_ = ['../../skd_wm3d_synth.py']
orient_old = dict(loss_weak3d=dict(orient_period=1.5707963267948966, orient_kind='cos',
                                   loss_weights=dict(orient=0.2)))
model = dict(bbox_head=orient_old, teacher_head=orient_old)
