"""Engine hooks: gradient-targeted transfer modulation, and stopping on non-finite losses."""
from .grad_modulation_hook import GradModulationHook
from .non_finite_hook import NonFiniteLossError, NonFiniteLossHook

__all__ = ['GradModulationHook', 'NonFiniteLossError', 'NonFiniteLossHook']
