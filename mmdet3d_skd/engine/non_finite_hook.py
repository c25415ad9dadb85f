"""Stop training cleanly on a NaN/inf loss, before the bad step (NonFiniteLossHook)."""
import os.path as osp
from collections.abc import Mapping
from typing import List, Optional, Sequence, Union

import torch
from mmengine import dist
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop

from mmdet3d.registry import HOOKS

DATA_BATCH = Optional[Union[dict, tuple, list]]
_MISSING = object()


class NonFiniteLossError(RuntimeError):
    """A training loss became NaN or infinite (raised by :class:`NonFiniteLossHook`)."""


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stops training at the first non-finite loss, before it reaches the weights.

    Model-agnostic: in ``before_train`` the (unwrapped) model's ``parse_losses`` is wrapped by
    an instance attribute, so every ``train_step`` (mmengine's BaseModel and its DDP/FSDP
    wrappers all call ``model.parse_losses`` between the forward pass and
    ``optim_wrapper.update_params``) checks the summed loss ``L = sum_k mean(loss_k)``
    (entries whose name contains ``'loss'``, as BaseModel sums them) *before* backward and the
    optimizer step. ``L`` is finite iff every term is finite (a NaN or +-inf term makes the sum
    NaN or inf; a finite overflow of the sum is reported as such), so a finite iteration costs
    one ``isfinite`` and one device-to-host read of a boolean, and with several ranks one
    1-element all-reduce so that every rank stops at the same iteration (no rank is left
    waiting in a collective).

    The bad iteration's forward pass has already updated the model's buffers (BatchNorm
    running statistics, possibly with NaN); so the buffers are copied in ``before_train_iter``
    (``restore_buffers``; a copy of the buffers, not of the parameters, per iteration) and
    written back on failure.

    On a non-finite loss, on every rank:

    - the model (parameters untouched by the bad iteration, buffers restored), optimizer and
      parameter schedulers, as they were after the previous iteration, are saved as
      ``work_dir/<filename>`` (``runner.save_checkpoint``, master rank; hooks add their state
      as usual, e.g. GradModulationHook's), with ``meta.iter`` = the number of completed
      iterations;
    - an error is logged and :class:`NonFiniteLossError` raised with the same text: the
      iteration (1-based, as ``Iter(train) [i/N]`` in the log), each non-finite loss term
      with its value, the rank(s), and the batch's samples (``sample_idx``/``img_path``/
      ``lidar_path`` of each data sample's metainfo, recorded in ``before_train_iter``).

    The exception propagates out of ``runner.train()``; interval checkpoints already written
    stay. ``after_train`` removes the wrapper (as does the failure path).

    Written by hand: mmdet's ``CheckInvalidLossHook`` checks only every ``interval``
    iterations, after the optimizer step (the weights are already poisoned), with a bare
    ``assert`` that names neither the term nor the samples, and keeps no good model.

    Args:
        filename (str): checkpoint name in ``work_dir`` for the last good model.
        save_last_good (bool): save it (False: only report and stop).
        sample_keys (Sequence[str]): metainfo keys that identify a sample, reported in order.
        restore_buffers (bool): restore the buffers the bad forward pass changed.
    """

    priority = 'VERY_HIGH'  # record the batch before any other hook's before_train_iter

    def __init__(self,
                 filename: str = 'last_good.pth',
                 save_last_good: bool = True,
                 sample_keys: Sequence[str] = ('sample_idx', 'img_path', 'lidar_path'),
                 restore_buffers: bool = True) -> None:
        if not filename or osp.basename(filename) != filename:
            raise ValueError(f'NonFiniteLossHook: filename must be a plain file name (it is '
                             f'saved in work_dir), got {filename!r}')
        self.filename = filename
        self.save_last_good = bool(save_last_good)
        self.sample_keys = tuple(sample_keys)
        self.restore_buffers = bool(restore_buffers)
        self._model = None
        self._buffers: List[torch.Tensor] = []
        self._buffer_copies: List[torch.Tensor] = []
        self._wrapper = None
        self._previous = _MISSING
        self._batch_samples: List[str] = []

    # ------------------------------------------------------------------ install
    @staticmethod
    def _unwrapped(runner):
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        if not callable(getattr(model, 'parse_losses', None)):
            raise TypeError(
                f'NonFiniteLossHook needs a model with parse_losses(losses) (an mmengine '
                f'BaseModel); {type(model).__name__} has none. Remove the hook from '
                f'custom_hooks or use such a model.')
        return model

    def _install(self, runner) -> None:
        model = self._unwrapped(runner)
        if self._wrapper is not None and model.__dict__.get('parse_losses') is self._wrapper:
            return
        original = model.parse_losses
        self._previous = model.__dict__.get('parse_losses', _MISSING)

        def parse_losses(losses):
            loss, log_vars = original(losses)
            self._check(runner, loss, losses, log_vars)
            return loss, log_vars

        model.parse_losses = parse_losses
        self._model, self._wrapper = model, parse_losses

    def _uninstall(self) -> None:
        model, self._model = self._model, None
        if model is not None and model.__dict__.get('parse_losses') is self._wrapper:
            if self._previous is _MISSING:
                del model.parse_losses
            else:
                model.parse_losses = self._previous
        self._wrapper, self._previous = None, _MISSING
        self._buffers, self._buffer_copies = [], []

    @torch.no_grad()
    def _snapshot_buffers(self) -> None:
        buffers = list(self._model.buffers())
        same = len(buffers) == len(self._buffer_copies) and all(
            b.shape == c.shape and b.dtype == c.dtype and b.device == c.device
            for b, c in zip(buffers, self._buffer_copies))
        if same:
            for b, c in zip(buffers, self._buffer_copies):
                c.copy_(b)
        else:
            self._buffer_copies = [b.detach().clone() for b in buffers]
        self._buffers = buffers

    @torch.no_grad()
    def _restore_buffers(self) -> None:
        for b, c in zip(self._buffers, self._buffer_copies):
            b.copy_(c)

    # ------------------------------------------------------------------ checking
    def _describe_samples(self, data_batch) -> List[str]:
        samples = data_batch.get('data_samples') if isinstance(data_batch, Mapping) else None
        if not isinstance(samples, (list, tuple)):
            return []
        out = []
        for sample in samples:
            meta = getattr(sample, 'metainfo', sample)
            meta = meta if isinstance(meta, Mapping) else {}
            parts = [f'{k}={meta[k]}' for k in self.sample_keys if meta.get(k) is not None]
            out.append(' '.join(parts) or '<no identifying metainfo>')
        return out

    @staticmethod
    def _bad_terms(losses, log_vars, loss) -> List[str]:
        """``name=value`` of each non-finite loss term (per-term means, as parse_losses)."""
        terms = log_vars if isinstance(log_vars, Mapping) else losses
        bad = []
        if isinstance(terms, Mapping):
            for name, value in terms.items():
                if name == 'loss' or 'loss' not in name:
                    continue
                if isinstance(value, (list, tuple)):
                    value = sum(v.detach().float().mean() for v in value)
                value = torch.as_tensor(value).detach().float().mean()
                if not torch.isfinite(value):
                    bad.append(f'{name}={value.item()}')
        if not bad:  # every term finite: the sum itself overflowed
            bad.append(f'loss (sum of the finite terms)={torch.as_tensor(loss).item()}')
        return bad

    def _check(self, runner, loss, losses, log_vars) -> None:
        total = torch.as_tensor(loss).detach()
        flag = (~torch.isfinite(total)).any().to(torch.float32).reshape(1)
        if dist.get_world_size() > 1:
            dist.all_reduce(flag, op='max')
        if flag.item() == 0:
            return
        mine = dict(rank=dist.get_rank(),
                    terms=self._bad_terms(losses, log_vars, loss)
                    if not torch.isfinite(total).all() else [],
                    samples=list(self._batch_samples))
        records = [r for r in dist.all_gather_object(mine) if r['terms']]
        where = f'iteration {runner.iter + 1}'
        if isinstance(runner.train_loop, EpochBasedTrainLoop):
            where += f' (epoch {runner.epoch + 1})'
        lines = [f'NonFiniteLossHook: non-finite loss at {where}:']
        for r in records:
            rank = f' on rank {r["rank"]}' if dist.get_world_size() > 1 else ''
            samples = ', '.join(r['samples']) or 'unknown (the batch has no data_samples)'
            lines.append(f'  {", ".join(r["terms"])}{rank}; samples: [{samples}]')
        if self.restore_buffers:
            self._restore_buffers()
        if self.save_last_good:
            path = osp.join(runner.work_dir, self.filename)
            runner.save_checkpoint(runner.work_dir, self.filename, save_optimizer=True,
                                   save_param_scheduler=runner.param_schedulers is not None,
                                   meta=dict(epoch=runner.epoch, iter=runner.iter))
            dist.barrier()  # no rank exits (and gets the job torn down) before it is written
            lines.append(f'Training stopped before the optimizer step; the last good model '
                         f'(after {runner.iter} iterations) is saved at {path} (resume: '
                         f'tools/train.py CONFIG --resume {path}).')
        else:
            lines.append('Training stopped before the optimizer step.')
        message = '\n'.join(lines)
        runner.logger.error(message)
        self._uninstall()
        raise NonFiniteLossError(message)

    # ------------------------------------------------------------------ hook stages
    def before_train(self, runner) -> None:
        self._install(runner)

    def before_train_iter(self, runner, batch_idx: int, data_batch: DATA_BATCH = None) -> None:
        self._batch_samples = self._describe_samples(data_batch)
        if self.restore_buffers and self._model is not None:
            self._snapshot_buffers()

    def after_train(self, runner) -> None:
        self._uninstall()


__all__ = ['NonFiniteLossHook', 'NonFiniteLossError']
