"""Engine: the gradient-targeted transfer modulation hook."""
from .grad_modulation_hook import GradModulationHook

__all__ = ['GradModulationHook']
