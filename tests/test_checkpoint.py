"""mmengine runner checkpoints load under torch >= 2.6 (weights_only=True) once imported."""
import os
import pickle

import pytest
import torch
import torch.nn as nn
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner

import mmdet3d_skd  # noqa: F401  registers the safe globals
from mmdet3d_skd.checkpoint import history_buffer_getattr


class Toy(BaseModel):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.fc(inputs)
        return {'loss': out.pow(2).mean()} if mode == 'loss' else out


def train_toy(work_dir, max_iters=4, resume=False):
    torch.manual_seed(0)
    data = [dict(inputs=torch.randn(2)) for _ in range(8)]
    runner = Runner(
        model=Toy(), work_dir=str(work_dir), resume=resume,
        train_dataloader=dict(dataset=data, sampler=dict(type='DefaultSampler', shuffle=False),
                              batch_size=2, collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False)))
    runner.train()
    return runner


def test_runner_checkpoint_loads_with_torch_defaults(tmp_path):
    train_toy(tmp_path)
    ckpt = torch.load(tmp_path / 'iter_4.pth')  # torch's default: weights_only=True
    assert set(ckpt) >= {'meta', 'state_dict', 'message_hub', 'optimizer'}
    assert ckpt['meta']['iter'] == 4


def test_resume_from_a_runner_checkpoint(tmp_path):
    train_toy(tmp_path, max_iters=2)
    runner = train_toy(tmp_path, max_iters=4, resume=True)  # resumes iter_2.pth
    assert runner.iter == 4


def test_getattr_is_restricted_to_history_buffer_methods():
    assert history_buffer_getattr(HistoryBuffer, 'mean') is HistoryBuffer.mean
    with pytest.raises(pickle.UnpicklingError, match='refusing'):
        history_buffer_getattr(os, 'system')
    with pytest.raises(pickle.UnpicklingError):
        history_buffer_getattr(HistoryBuffer, '__init__')


@pytest.mark.parametrize('reduce', [
    (getattr, (HistoryBuffer, '__init__')),  # getattr beyond HistoryBuffer's methods
    (os.system, ('true', )),  # any other global
])
def test_a_crafted_checkpoint_is_still_refused(tmp_path, reduce):
    class Evil:
        def __reduce__(self):
            return reduce

    path = tmp_path / 'evil.pth'
    torch.save({'x': Evil()}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
