"""Load mmengine checkpoints under torch >= 2.6 (``torch.load(weights_only=True)`` default).

mmengine 0.10.7 calls ``torch.load`` without ``weights_only`` (mmengine issue #1655). Since
torch 2.6 that means ``weights_only=True``, and the checkpoints that mmengine's runner writes
hold a few non-tensor objects: the message hub's ``HistoryBuffer`` (with numpy arrays, numpy
scalars and dtypes) and its statistics methods, which pickle as ``getattr(HistoryBuffer,
'min')``. So ``load_from``, ``--resume`` and ``mim test --checkpoint`` fail with an
UnpicklingError.

The narrowest safe fix: allow exactly those classes in torch's weights-only unpickler
(``torch.serialization.add_safe_globals``), and for ``builtins.getattr`` a restricted
stand-in that only returns HistoryBuffer's public methods (a general ``getattr`` would let a
crafted file reach arbitrary code). Everything else in a checkpoint stays refused.
"""
import pickle

import numpy as np
import torch
from mmengine.logging import HistoryBuffer


def history_buffer_getattr(obj, name: str):
    """``getattr`` as the unpickler may use it: HistoryBuffer's public methods only."""
    if obj is HistoryBuffer and not name.startswith('_') and callable(
            vars(HistoryBuffer).get(name)):
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'mmdet3d_skd: refusing getattr({obj!r}, {name!r}) while loading a checkpoint with '
        'weights_only=True; only HistoryBuffer methods are allowed')


def _numpy_globals() -> list:
    """The numpy reconstructors, array type and dtype classes that pickled arrays refer to."""
    if hasattr(getattr(np, '_core', None), 'multiarray'):  # numpy >= 2
        from numpy._core import multiarray
    else:
        from numpy.core import multiarray
    names = [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype]
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:  # numpy >= 1.25 pickles a dtype through its class
        names += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType')]
    return names


# What an mmengine runner's checkpoint holds besides tensors and builtin containers.
SAFE_GLOBALS = [HistoryBuffer, *_numpy_globals(),
                (history_buffer_getattr, 'builtins.getattr')]


def register_safe_globals() -> bool:
    """Allow ``SAFE_GLOBALS`` in torch's weights-only unpickler.

    Returns False on a torch without ``add_safe_globals`` (< 2.4), which needs no fix.
    """
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:
        return False
    add(SAFE_GLOBALS)
    return True
