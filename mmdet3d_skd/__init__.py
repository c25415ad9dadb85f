"""SKD-WM3D for MMDetection3D.

Importing this package registers every module into ``mmdet3d.registry`` (MODELS, TRANSFORMS,
DATASETS, METRICS, HOOKS), so a config needs only
``custom_imports = dict(imports=['mmdet3d_skd'], allow_failed_imports=False)``; it also makes
mmengine checkpoints load under torch >= 2.6 (see ``mmdet3d_skd.checkpoint``).
"""
from .checkpoint import register_safe_globals
from .version import __version__

register_safe_globals()

from . import datasets, engine, evaluation, models, visualization  # noqa: E402,F401

__all__ = ['__version__', 'datasets', 'engine', 'evaluation', 'models', 'visualization']
