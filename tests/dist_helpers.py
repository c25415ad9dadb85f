"""Helpers for the two-process CPU training of tests/test_distributed.py.

Imported through the test config's ``custom_imports`` in every rank (``tools/train.py`` loads the
config before it builds the runner), so it runs before mmengine sets up the distributed
environment:

* On a machine without CUDA it initialises the gloo process group itself from the variables
  that ``torch.distributed.run`` sets. mmengine's ``init_dist('pytorch')`` always calls
  ``torch.cuda.set_device(LOCAL_RANK)``, which fails without CUDA (AttributeError on the CPU
  build of torch); the runner skips ``init_dist`` when a process group already exists.
* ``RankStateDumpHook`` records, per iteration and per rank, the rank's own (not averaged)
  branch losses, the transfer coefficients the model holds after GradModulationHook ran, and
  the ids of the samples the rank trained on; after training it saves them with the rank's
  parameters, buffers and GradModulationHook state to ``<work_dir>/rank<R>.pth``.
"""
import os

import torch
import torch.distributed as torch_dist
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmdet3d.registry import HOOKS


def init_cpu_process_group() -> bool:
    """gloo process group from torchrun's environment when CUDA is absent; True if created."""
    launched = all(k in os.environ for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR',
                                             'MASTER_PORT'))
    if not launched or torch.cuda.is_available() or torch_dist.is_initialized():
        return False
    torch_dist.init_process_group(backend='gloo')
    return True


init_cpu_process_group()


@HOOKS.register_module()
class RankStateDumpHook(Hook):
    """Per-rank record of a training run (see the module docstring); runs after
    GradModulationHook (priority LOW after NORMAL)."""

    priority = 'LOW'

    def __init__(self) -> None:
        self.history = []

    @staticmethod
    def _module(runner):
        return runner.model.module if is_model_wrapper(runner.model) else runner.model

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.history.append(dict(
            loss_teacher=float(outputs['weak_total_teacher']),
            loss_student=float(outputs['weak_total_student']),
            transfer=dict(self._module(runner).transfer),
            samples=[s.metainfo['sample_idx'] for s in data_batch['data_samples']]))

    def after_train(self, runner) -> None:
        grad_hook = next(h for h in runner.hooks if type(h).__name__ == 'GradModulationHook')
        state = {k: v.detach().cpu().clone()
                 for k, v in self._module(runner).state_dict().items()}
        torch.save(dict(state_dict=state, grad_modulation_hook=grad_hook.state_dict(),
                        history=self.history, world_size=runner.world_size),
                   os.path.join(runner.work_dir, f'rank{get_rank()}.pth'))
