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


# ----------------------------------------------------------------------------------------
# corrupted / truncated checkpoints
# ----------------------------------------------------------------------------------------
# mmengine's local loader hands the file to ``torch.load``, whose errors for a damaged file
# name neither the file nor the problem (a truncated zip: "PytorchStreamReader failed
# reading zip archive: failed finding central directory"; an empty file: a bare EOFError;
# garbage: ``KeyError: 101``) and which never checks the archive's CRC-32s, so a checkpoint
# with flipped bytes inside a tensor loads silently. The local scheme of mmengine's
# CheckpointLoader is re-registered with a wrapper that checks the file first.
import os.path as osp  # noqa: E402
import zipfile  # noqa: E402

from mmengine.runner.checkpoint import CheckpointLoader  # noqa: E402
from mmengine.runner.checkpoint import load_from_local as _mmengine_load_from_local  # noqa: E402

_ZIP_MAGIC = b'PK\x03\x04'
_CHUNK = 1 << 20


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file that is empty, truncated or corrupted (its message names it)."""


def check_checkpoint_file(path: str) -> bool:
    """Raise CorruptCheckpointError if ``path`` is not a sound checkpoint archive.

    torch >= 1.6 writes a zip archive: it must open (a truncated file lacks the central
    directory at its end) and every member must match its CRC-32 (members stored with CRC 0,
    written under ``torch.serialization.set_crc32_options(False)``, are not checked). Reads
    the whole file once. Returns True for a zip archive, False for another format (a legacy
    torch < 1.6 file, or not a checkpoint), which only ``torch.load`` can judge.
    """
    size = osp.getsize(path)
    problem = 'corrupted or truncated checkpoint'
    if size == 0:
        raise CorruptCheckpointError(f'{path}: {problem}: the file is empty (0 bytes)')
    with open(path, 'rb') as f:
        if f.read(4) != _ZIP_MAGIC:
            return False
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if info.CRC == 0 and info.file_size > 0:
                    continue
                with z.open(info) as member:  # raises BadZipFile on a CRC mismatch at EOF
                    while member.read(_CHUNK):
                        pass
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as e:
        raise CorruptCheckpointError(
            f'{path}: {problem} ({size} bytes): the zip archive that torch.save writes is '
            f'damaged: {e}') from e
    return True


def load_from_local(filename: str, map_location=None):
    """mmengine's local checkpoint loader, after :func:`check_checkpoint_file`.

    A sound archive loads exactly as with mmengine (same function, same errors: e.g. the
    weights-only refusal of an unsafe pickle is passed through). A non-zip file that torch
    cannot load raises CorruptCheckpointError naming the file, chained to torch's error.
    (Named like mmengine's so that its log line, ``Loads checkpoint by local backend``,
    is unchanged.)
    """
    path = osp.expanduser(filename)
    if not osp.isfile(path):
        return _mmengine_load_from_local(filename, map_location)  # FileNotFoundError(path)
    is_zip = check_checkpoint_file(path)
    try:
        return _mmengine_load_from_local(filename, map_location)
    except Exception as e:
        if is_zip:
            raise
        raise CorruptCheckpointError(
            f'{path}: corrupted or truncated checkpoint, or not a PyTorch checkpoint: it is '
            'not the zip archive torch.save writes, and loading it as a legacy (torch < 1.6) '
            f'file failed with {type(e).__name__}: {e}') from e


def register_checked_local_loader() -> None:
    """Make :func:`load_from_local` mmengine's loader of local paths (``load_checkpoint``,
    the runner's ``load_from`` and ``resume``). Idempotent."""
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)


register_checked_local_loader()
