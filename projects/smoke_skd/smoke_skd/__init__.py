"""SMOKE-SKD's code: SMOKESKDHead (mmdet3d's SMOKE head trained weakly). Loaded by the
project's configs (``custom_imports``), as mmdet3d's ``projects/*/`` are; run from the
repository root (``tools/train.py`` puts it on ``sys.path``; with ``mim``: ``PYTHONPATH=.``)."""
from .smoke_skd_head import LAYOUT, SMOKESKDHead, check_input_frame

__all__ = ['SMOKESKDHead', 'check_input_frame', 'LAYOUT']
