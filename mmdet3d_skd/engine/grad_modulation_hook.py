"""Gradient-targeted transfer modulation (GTM) as an mmengine hook."""
import math
from typing import Dict, Optional, Tuple, Union

import torch
from mmengine import dist
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmdet3d.registry import HOOKS

DATA_BATCH = Optional[Union[dict, tuple, list]]

TEACHER_KEY = 'weak_total_teacher'
STUDENT_KEY = 'weak_total_student'
STATE_KEY = 'grad_modulation_hook'


def transfer_coefficients(rho: float, alpha: float, beta: float,
                          k_min: float) -> Tuple[float, float, float]:
    """GTM schedule: ``(k_teacher, k_student, k_distill)`` from the pace ratio ``rho``.

    ``rho = r_S / r_T`` with ``r = EMA(loss) / loss at the end of warm-up``; ``rho > 1`` means
    the student lags. With ``g = tanh(alpha * |rho - 1|)``:

    - rho > 1: k_teacher = max(k_min, 1 - g), k_student = 1, k_distill = 1 + beta * g
      (the teacher's pull on the shared encoder is damped and its knowledge pushed harder);
    - rho < 1: k_teacher = 1, k_student = max(k_min, 1 - g), k_distill = max(k_min, 1 - beta * g)
      (the student's pull is damped and knowledge from the lagging teacher too);
    - rho == 1: all 1.0.
    """
    if not math.isfinite(rho):
        raise ValueError(f'transfer_coefficients: rho must be finite, got {rho}')
    g = math.tanh(alpha * abs(rho - 1.0))
    if rho > 1.0:
        return max(k_min, 1.0 - g), 1.0, 1.0 + beta * g
    if rho < 1.0:
        return 1.0, max(k_min, 1.0 - g), max(k_min, 1.0 - beta * g)
    return 1.0, 1.0, 1.0


@HOOKS.register_module()
class GradModulationHook(Hook):
    """Keeps the teacher (DSN) and student (MDN) learning the shared encoder at the same pace.

    Every training iteration, with L_T / L_S the detector's ``weak_total_teacher`` /
    ``weak_total_student`` log entries (each branch's summed weak losses), averaged over ranks
    so that every rank applies the same coefficients:

    - EMA_T <- m * EMA_T + (1 - m) * L_T (same for S; initialised with the first value);
    - for the first ``warmup_iters`` iterations k_teacher = k_student = k_distill = 1; at the end
      of warm-up the references L_T0 = EMA_T, L_S0 = EMA_S are recorded;
    - afterwards r_T = EMA_T / L_T0, r_S = EMA_S / L_S0, rho = r_S / r_T and the coefficients
      follow :func:`transfer_coefficients` (rho > 1: the student lags, the teacher's gradient
      into the shared encoder is scaled by max(k_min, 1 - tanh(alpha (rho - 1))) and the
      distillation's by 1 + beta tanh(alpha (rho - 1)); symmetrically for rho < 1).

    The coefficients go to ``model.set_transfer_coefficients(teacher, student, distill)`` and
    apply from the next iteration. ``train/k_teacher``, ``train/k_student``, ``train/k_distill``
    and ``train/rho`` are written to the message hub every iteration, so LoggerHook puts them in
    the text log and the visualizer backends (TensorBoard) at its own interval; every
    ``interval`` iterations the hook also logs its full state (EMAs, references, r_T, r_S).
    Iterations whose averaged losses are not finite leave the state unchanged.

    The state (EMAs, references, coefficients, iteration count) is saved in the checkpoint under
    ``'grad_modulation_hook'`` and restored (and re-applied to the model) on load, so a resumed
    run continues exactly; ``restore_state=False`` restarts the schedule instead (fine-tuning
    with ``load_from``).

    Written by hand: mmengine has no hook that couples two loss trends to gradient scaling.

    Args:
        warmup_iters (int): iterations with all coefficients at 1.0 before the references are
            taken (at least one iteration is always used).
        alpha (float): sensitivity of the coefficients to the pace ratio, >= 0.
        beta (float): strength of the distillation modulation, >= 0.
        k_min (float): lower bound of the damped coefficients, in [0, 1].
        momentum (float): EMA momentum m, in [0, 1).
        interval (int): iterations between full-state log lines; <= 0 disables them.
        eps (float): floor of the reference losses and of r_T in the ratios.
        restore_state (bool): restore the hook's state from a loaded checkpoint.
    """

    priority = 'NORMAL'  # before LoggerHook (BELOW_NORMAL): logged in the same iteration

    def __init__(self,
                 warmup_iters: int = 500,
                 alpha: float = 1.0,
                 beta: float = 1.0,
                 k_min: float = 0.1,
                 momentum: float = 0.9,
                 interval: int = 50,
                 eps: float = 1e-6,
                 restore_state: bool = True) -> None:
        if warmup_iters < 0:
            raise ValueError(f'GradModulationHook: warmup_iters must be >= 0, got {warmup_iters}')
        if alpha < 0 or beta < 0:
            raise ValueError(f'GradModulationHook: alpha and beta must be >= 0, got '
                             f'alpha={alpha}, beta={beta}')
        if not 0.0 <= k_min <= 1.0:
            raise ValueError(f'GradModulationHook: k_min must be in [0, 1], got {k_min}')
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f'GradModulationHook: momentum must be in [0, 1), got {momentum}')
        if eps <= 0:
            raise ValueError(f'GradModulationHook: eps must be > 0, got {eps}')
        self.warmup_iters = int(warmup_iters)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.k_min = float(k_min)
        self.momentum = float(momentum)
        self.interval = int(interval)
        self.eps = float(eps)
        self.restore_state = bool(restore_state)
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget every statistic: back to warm-up with all coefficients at 1.0."""
        self.num_updates = 0
        self.ema_teacher: Optional[float] = None
        self.ema_student: Optional[float] = None
        self.ref_teacher: Optional[float] = None
        self.ref_student: Optional[float] = None
        self.rho = 1.0
        self.coefficients: Tuple[float, float, float] = (1.0, 1.0, 1.0)

    def state_dict(self) -> Dict:
        return dict(
            num_updates=self.num_updates,
            ema_teacher=self.ema_teacher,
            ema_student=self.ema_student,
            ref_teacher=self.ref_teacher,
            ref_student=self.ref_student,
            rho=self.rho,
            coefficients=list(self.coefficients))

    def load_state_dict(self, state: Dict) -> None:
        self.num_updates = int(state['num_updates'])
        self.ema_teacher = state['ema_teacher']
        self.ema_student = state['ema_student']
        self.ref_teacher = state['ref_teacher']
        self.ref_student = state['ref_student']
        self.rho = float(state['rho'])
        self.coefficients = tuple(float(k) for k in state['coefficients'])

    def update(self, loss_teacher: float, loss_student: float) -> Tuple[float, float, float]:
        """Advance the EMAs by one iteration and return the new coefficients.

        The losses must already be the same on every rank (``after_train_iter`` averages them).
        """
        if not (math.isfinite(loss_teacher) and math.isfinite(loss_student)):
            return self.coefficients
        self.num_updates += 1
        m = self.momentum
        if self.ema_teacher is None:
            self.ema_teacher, self.ema_student = loss_teacher, loss_student
        else:
            self.ema_teacher = m * self.ema_teacher + (1 - m) * loss_teacher
            self.ema_student = m * self.ema_student + (1 - m) * loss_student
        if self.ref_teacher is None:
            if self.num_updates >= max(self.warmup_iters, 1):
                self.ref_teacher = self.ema_teacher
                self.ref_student = self.ema_student
            self.rho = 1.0
            self.coefficients = (1.0, 1.0, 1.0)
            return self.coefficients
        r_t = max(self.ema_teacher / max(self.ref_teacher, self.eps), self.eps)
        r_s = self.ema_student / max(self.ref_student, self.eps)
        self.rho = r_s / r_t
        self.coefficients = transfer_coefficients(self.rho, self.alpha, self.beta, self.k_min)
        return self.coefficients

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _detector(runner):
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        if not callable(getattr(model, 'set_transfer_coefficients', None)):
            raise TypeError(
                f'GradModulationHook needs an SKD-style detector with a '
                f'set_transfer_coefficients(teacher, student, distill) method (e.g. SKDWM3D); '
                f'{type(model).__name__} has none. Remove the hook from custom_hooks or use '
                f'such a detector.')
        return model

    def _apply(self, runner) -> None:
        self._detector(runner).set_transfer_coefficients(*self.coefficients)

    @staticmethod
    def _read_losses(outputs) -> torch.Tensor:
        if not isinstance(outputs, dict):
            raise TypeError(f'GradModulationHook expects the log_vars dict of train_step as '
                            f'outputs, got {type(outputs).__name__}')
        values = []
        for key in (TEACHER_KEY, STUDENT_KEY):
            if key not in outputs:
                raise KeyError(
                    f"GradModulationHook: the model's train_step outputs have no '{key}' "
                    f'entry (keys: {sorted(outputs)}); the hook needs an SKD-style detector '
                    f"that reports 'weak_total_teacher' and 'weak_total_student'.")
            value = outputs[key]
            value = value.detach() if isinstance(value, torch.Tensor) else torch.tensor(value)
            values.append(value.to('cpu', torch.float64).mean())
        return torch.stack(values)

    # ------------------------------------------------------------------ hook stages
    def before_train(self, runner) -> None:
        """Apply the current (initial or restored) coefficients before the first iteration."""
        self._apply(runner)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        losses = self._read_losses(outputs)
        dist.all_reduce(losses, op='mean')
        loss_teacher, loss_student = losses.tolist()
        k_t, k_s, k_d = self.update(loss_teacher, loss_student)
        self._apply(runner)

        hub = runner.message_hub
        hub.update_scalar('train/k_teacher', k_t)
        hub.update_scalar('train/k_student', k_s)
        hub.update_scalar('train/k_distill', k_d)
        hub.update_scalar('train/rho', self.rho)
        if self.interval > 0 and self.every_n_train_iters(runner, self.interval):
            runner.logger.info(
                f'GradModulationHook: iter {self.num_updates}, '
                f'EMA L_T={self.ema_teacher}, L_S={self.ema_student}, '
                f'ref L_T0={self.ref_teacher}, L_S0={self.ref_student}, rho={self.rho:.4f}, '
                f'k_teacher={k_t:.4f}, k_student={k_s:.4f}, k_distill={k_d:.4f}')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[STATE_KEY] = self.state_dict()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not self.restore_state or STATE_KEY not in checkpoint:
            return
        self.load_state_dict(checkpoint[STATE_KEY])
        self._apply(runner)


__all__ = ['GradModulationHook', 'transfer_coefficients']
