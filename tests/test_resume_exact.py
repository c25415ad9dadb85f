"""Exact resume: a run stopped after 3 of 6 iterations and resumed from its checkpoint ends
with the same weights, optimizer state and GradModulationHook state (EMAs, references,
coefficients) as an uninterrupted run with the same seed, with random flip and shift-scale
augmentation on (mmengine's IterBasedTrainLoop replays the skipped batches through the
pipeline, so numpy's generator is where it was; see docs/weak_supervision_guards.md for the
conditions)."""
import json
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

import mmdet3d_skd  # noqa: F401  (checkpoint loading under torch >= 2.6)
from tests.conftest import small_synth_cfg

ITERS, STOP = 6, 3
CLOCK_KEYS = ('time', 'data_time', 'eta', 'memory')


class Interrupted(Exception):
    """Stands for the job being killed (after the checkpoint of iteration STOP was written)."""


class StopAfter(Hook):
    priority = 'LOWEST'  # after CheckpointHook (VERY_LOW) has saved

    def __init__(self, iters):
        self.iters = iters

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.iters:
            raise Interrupted(f'stopped after {self.iters} iterations')


class RecordAugmentation(Hook):
    """Per iteration: each sample's index, flip and affine matrix, as the model receives it."""

    def __init__(self):
        self.batches = {}

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.batches[runner.iter + 1] = [
            (s.sample_idx, bool(s.flip), bool(s.affine_aug), np.asarray(s.trans_mat).tolist())
            for s in data_batch['data_samples']]


def make_cfg(data_root, work_dir):
    cfg = small_synth_cfg(data_root, work_dir, max_iters=ITERS, batch_size=2)
    cfg.randomness = dict(seed=0)
    cfg.default_hooks.checkpoint.interval = STOP
    for hook in cfg.custom_hooks:
        if hook['type'] == 'GradModulationHook':
            hook['warmup_iters'] = 2  # the coefficients move from iteration 3 on
    for t in cfg.train_dataloader.dataset.pipeline:
        if t['type'] == 'RandomShiftScale':
            t['aug_prob'] = 1.0  # every sample draws a random shift and scale
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    cfg.visualizer.name = cfg.experiment_name = f'resume_{uuid.uuid4().hex[:8]}'
    return cfg


def run(cfg, resume=False, stop=None):
    cfg = cfg.copy()
    cfg.resume = resume
    cfg.visualizer.name = cfg.experiment_name = f'resume_{uuid.uuid4().hex[:8]}'
    runner = Runner.from_cfg(cfg)
    record = RecordAugmentation()
    runner.register_hook(record, priority='LOWEST')
    if stop is not None:
        runner.register_hook(StopAfter(stop))
        with pytest.raises(Interrupted):
            runner.train()
    else:
        runner.train()
    return runner, record.batches


def losses_by_iter(work_dir):
    rows = [json.loads(line) for f in Path(work_dir).glob('*/vis_data/scalars.json')
            for line in f.read_text().splitlines()]
    return {r['iter']: {k: v for k, v in r.items() if k not in CLOCK_KEYS} for r in rows}


def load(path):
    return torch.load(str(path), map_location='cpu', weights_only=False)


def assert_same_tensors(a, b, where):
    if isinstance(a, torch.Tensor):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=where)
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same_tensors(a[k], b[k], f'{where}.{k}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tensors(x, y, f'{where}[{i}]')
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-6), where
    else:
        assert a == b, where


def test_stop_and_resume_equals_an_uninterrupted_run(synth_data, tmp_path):
    whole_dir, parts_dir = tmp_path / 'whole', tmp_path / 'parts'
    _, aug_whole = run(make_cfg(synth_data, whole_dir))
    _, aug_first = run(make_cfg(synth_data, parts_dir), stop=STOP)
    assert (parts_dir / f'iter_{STOP}.pth').exists()
    assert not (parts_dir / f'iter_{ITERS}.pth').exists()
    resumed, aug_second = run(make_cfg(synth_data, parts_dir), resume=True)
    assert sorted(aug_second) == list(range(STOP + 1, ITERS + 1))  # continued, not restarted

    # the augmentation was random and the resumed run drew the same samples and the same
    # flips / shift-scales as the uninterrupted one
    flips = [f for it in aug_whole.values() for _, f, _, _ in it]
    assert any(flips) and not all(flips)
    assert len({str(m) for it in aug_whole.values() for _, _, _, m in it}) > 2
    assert {**aug_first, **aug_second} == aug_whole

    whole, parts = load(whole_dir / f'iter_{ITERS}.pth'), load(parts_dir / f'iter_{ITERS}.pth')
    assert whole['meta']['iter'] == parts['meta']['iter'] == ITERS
    assert_same_tensors(whole['state_dict'], parts['state_dict'], 'state_dict')
    assert_same_tensors(whole['optimizer'], parts['optimizer'], 'optimizer')
    assert whole['param_schedulers'] == parts['param_schedulers']
    # the GTM hook's state is in the checkpoint, moved away from warm-up, and the same
    gtm, gtm_parts = whole['grad_modulation_hook'], parts['grad_modulation_hook']
    assert gtm['num_updates'] == ITERS and gtm['ref_teacher'] is not None
    assert gtm['coefficients'] != [1.0, 1.0, 1.0]
    assert_same_tensors(gtm, gtm_parts, 'grad_modulation_hook')
    assert list(resumed.model.transfer.values()) == pytest.approx(gtm['coefficients'])
    # and so are the losses of the resumed iterations, as logged
    logged, logged_parts = losses_by_iter(whole_dir), losses_by_iter(parts_dir)
    assert sorted(logged_parts) == list(range(1, ITERS + 1))
    for it in range(1, ITERS + 1):
        for key, value in logged[it].items():
            assert logged_parts[it][key] == pytest.approx(value, rel=1e-6), (it, key)


# --------------------------------------------------------------------------- the seed
class ShuffledToy(BaseModel):
    """Records which samples each training iteration got."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(1, 1)
        self.seen = []

    def forward(self, inputs, data_samples=None, mode='tensor'):
        self.seen.append([int(x) for x in torch.stack(inputs)[:, 0]])
        return dict(loss=self.linear(torch.stack(inputs)).pow(2).mean())


class Indices(torch.utils.data.Dataset):
    def __len__(self):
        return 12

    def __getitem__(self, i):
        return dict(inputs=torch.tensor([float(i)]))


def toy_run(work_dir, seed, resume=False, stop=None):
    model = ShuffledToy()
    runner = Runner(
        model=model, work_dir=str(work_dir),
        train_dataloader=dict(dataset=Indices(), sampler=dict(type='DefaultSampler',
                                                              shuffle=True),
                              batch_size=2, num_workers=0,
                              collate_fn=dict(type='pseudo_collate')),
        train_cfg=dict(by_epoch=False, max_iters=ITERS),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=STOP,
                                           by_epoch=False)),
        default_scope='mmdet3d', experiment_name=f'seed_{uuid.uuid4().hex[:8]}',
        randomness=dict(seed=seed), resume=resume)
    if stop is not None:
        runner.register_hook(StopAfter(stop))
        with pytest.raises(Interrupted):
            runner.train()
    else:
        runner.train()
    return model.seen


def test_resume_needs_a_fixed_seed_in_the_config(tmp_path):
    """Without ``randomness.seed`` mmengine builds the resumed run's sampler with a new random
    seed before it reads the checkpoint's seed: the resumed iterations get other samples. With
    the seed fixed they get the same ones (the seed of the checkpoint is 0 in both cases)."""
    whole = toy_run(tmp_path / 'whole', seed=0)
    for seed, same in ((0, True), (None, False)):
        work = tmp_path / f'parts_{seed}'
        first = toy_run(work, seed=0, stop=STOP)
        second = toy_run(work, seed=seed, resume=True)
        assert first == whole[:STOP]
        assert (second == whole[STOP:]) is same, (seed, second, whole[STOP:])
