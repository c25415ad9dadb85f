# Runtime shared by every SKD-WM3D config: mmdet3d's (default hooks, logging, env) plus the
# plugin's import and a fixed seed.
_base_ = ['mmdet3d::_base_/default_runtime.py']
custom_imports = dict(imports=['mmdet3d_skd'], allow_failed_imports=False)

# a fixed seed: mmengine re-seeds a resumed run before reading the checkpoint's seed, so
# --resume is exact only with a seed in the config (docs/weak_supervision_guards.md)
randomness = dict(seed=0)
