"""SKD-WM3D for MMDetection3D. Importing registers every module into mmdet3d.registry."""
from .version import __version__  # noqa: F401
