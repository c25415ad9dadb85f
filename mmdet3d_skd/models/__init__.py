"""Models: the detector, its head, the teacher's neck, the losses."""
from .data_preprocessor import SKDDataPreprocessor
from .depth_fusion_neck import DepthFusionNeck
from .detector import SKDWM3D
from .distill_loss import UncertaintyDistillLoss
from .skd_head import SKDHead
from .weak_losses import WeakMono3DLoss

__all__ = ['SKDDataPreprocessor', 'DepthFusionNeck', 'SKDWM3D', 'UncertaintyDistillLoss',
           'SKDHead', 'WeakMono3DLoss']
