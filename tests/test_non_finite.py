"""NonFiniteLossHook: a NaN/inf loss is reported (iteration, loss term, samples) and stops
training before the optimizer step, with the last good model saved; finite training is
untouched. A toy model in mmengine's real Runner for the details, two gloo ranks for the
distributed stop, and the SKD-WM3D synth config end to end."""
import copy
import glob
import json
import os
import socket
import types
import uuid

import pytest
import torch
import torch.multiprocessing as mp
from mmengine.logging import MMLogger
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.structures import BaseDataElement
from torch import nn

from mmdet3d.registry import HOOKS, MODELS
from mmdet3d_skd.engine.non_finite_hook import NonFiniteLossError, NonFiniteLossHook
from mmdet3d_skd.models.detector import SKDWM3D
from tests.conftest import small_synth_cfg


# --------------------------------------------------------------------------- toy harness
class ToyModel(BaseModel):
    """Two loss terms; at forward call ``bad_call`` (1-based) term ``bad_term`` is multiplied
    by ``bad_value`` (``bad_term=None``: both terms become ``bad_value``). Records what the hook
    must report, independently of it: the weights and buffers before each call (= before that
    iteration's step) and the samples of each batch."""

    def __init__(self, bad_call=None, bad_term='loss_b', bad_value=float('nan')):
        super().__init__()
        torch.manual_seed(0)
        self.bn = nn.BatchNorm1d(2)  # buffers that every training forward changes
        self.linear = nn.Linear(2, 2)
        self.bad_call, self.bad_term, self.bad_value = bad_call, bad_term, bad_value
        self.calls = 0
        self.weights_before = []   # state_dict copies, one per forward call
        self.samples_seen = []     # per call, the 'sample_idx=..' strings of the batch
        self.wrapped_during_training = []

    def forward(self, inputs, data_samples=None, mode='tensor'):
        self.calls += 1
        self.weights_before.append(copy.deepcopy(self.state_dict()))
        self.samples_seen.append([f"sample_idx={s.sample_idx} img_path={s.img_path}"
                                  for s in data_samples])
        self.wrapped_during_training.append('parse_losses' in self.__dict__)
        out = self.linear(self.bn(torch.stack(inputs)))
        losses = dict(loss_a=(out[:, 0] - 1).pow(2).mean(),
                      loss_b=(out[:, 1] + 1).abs().mean(),
                      acc=out.detach().sum())  # a logged value, not a loss term
        if self.calls == self.bad_call and self.bad_term is None:
            losses['loss_a'] = losses['loss_a'] * 0 + self.bad_value
            losses['loss_b'] = losses['loss_b'] * 0 + self.bad_value
        elif self.calls == self.bad_call:
            losses[self.bad_term] = losses[self.bad_term] * self.bad_value
        return losses


class Samples(torch.utils.data.Dataset):
    def __len__(self):
        return 12

    def __getitem__(self, i):
        return dict(inputs=torch.tensor([1.0, 0.1 * i]),
                    data_samples=BaseDataElement(
                        metainfo=dict(sample_idx=i, img_path=f'img_{i}.png')))


def toy_runner(work_dir, model, max_iters=6, hook=True, resume_from=None, **hook_args):
    loader = dict(dataset=Samples(), sampler=dict(type='DefaultSampler', shuffle=False),
                  batch_size=2, num_workers=0, collate_fn=dict(type='pseudo_collate'))
    return Runner(
        model=model, work_dir=str(work_dir), train_dataloader=loader,
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        param_scheduler=dict(type='LinearLR', start_factor=0.5, by_epoch=False, end=10),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1),
                           checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False)),
        custom_hooks=[dict(type='NonFiniteLossHook', **hook_args)] if hook else [],
        default_scope='mmdet3d', experiment_name=f'nonfinite_{uuid.uuid4().hex[:8]}',
        randomness=dict(seed=0), resume=resume_from is not None, load_from=resume_from)


def load(path):
    return torch.load(str(path), map_location='cpu', weights_only=False)


def scalars(work_dir):
    files = glob.glob(str(work_dir / '*' / 'vis_data' / 'scalars.json'))
    return [json.loads(line) for f in files for line in open(f)]


# --------------------------------------------------------------------------- toy: NaN
def test_nan_stops_before_the_step_with_iteration_term_samples_and_last_good(tmp_path):
    assert HOOKS.get('NonFiniteLossHook') is NonFiniteLossHook
    model = ToyModel(bad_call=3)
    runner = toy_runner(tmp_path, model)
    with pytest.raises(NonFiniteLossError) as info:
        runner.train()
    assert isinstance(info.value, RuntimeError)
    msg = str(info.value)
    # iteration 3 of the log's 1-based count, the bad term with its value, not the good one
    assert 'non-finite loss at iteration 3:' in msg
    assert 'loss_b=nan' in msg and 'loss_a=' not in msg and 'acc' not in msg
    # the third batch of an unshuffled loader of batch 2: samples 4 and 5, as the model saw
    assert model.samples_seen[2] == ['sample_idx=4 img_path=img_4.png',
                                     'sample_idx=5 img_path=img_5.png']
    assert 'samples: [sample_idx=4 img_path=img_4.png, sample_idx=5 img_path=img_5.png]' in msg
    # training did not continue: no fourth forward, two logged iterations, no later checkpoint
    assert model.calls == 3
    assert [r['iter'] for r in scalars(tmp_path)] == [1, 2]
    assert (tmp_path / 'iter_2.pth').exists() and not (tmp_path / 'iter_4.pth').exists()
    # last_good.pth = the model before the bad step (no step happened), finite, and the same
    # weights and optimizer state as the interval checkpoint after iteration 2
    good = load(tmp_path / 'last_good.pth')
    before_bad = model.weights_before[2]
    assert good['meta']['iter'] == 2
    assert good['state_dict']['bn.num_batches_tracked'] == 2  # the BN update was undone
    for k, v in before_bad.items():
        assert torch.equal(good['state_dict'][k], v), k
        assert torch.equal(model.state_dict()[k], v), k
        assert torch.isfinite(good['state_dict'][k]).all(), k
    assert not torch.equal(before_bad['linear.weight'], model.weights_before[0]['linear.weight'])
    it2 = load(tmp_path / 'iter_2.pth')
    for k, v in it2['state_dict'].items():
        assert torch.equal(good['state_dict'][k], v), k
    assert good['optimizer']['state'].keys() == it2['optimizer']['state'].keys()
    for p, state in it2['optimizer']['state'].items():
        assert torch.equal(good['optimizer']['state'][p]['momentum_buffer'],
                           state['momentum_buffer'])
    assert good['param_schedulers'] == it2['param_schedulers']
    assert good['param_schedulers'][0]['last_step'] == 2
    # logged as an error with the same text; the wrapper is gone again
    log = open(glob.glob(str(tmp_path / '*' / '*.log'))[0]).read()
    assert 'ERROR' in log and 'non-finite loss at iteration 3' in log
    assert 'parse_losses' not in model.__dict__


def test_the_bad_forwards_batchnorm_update_is_undone(tmp_path):
    """The forward pass of the bad iteration moved the BN running statistics; without the
    restore, last_good.pth would hold them (here finite; NaN when the NaN is upstream)."""
    model = ToyModel(bad_call=3)
    with pytest.raises(NonFiniteLossError):
        toy_runner(tmp_path, model, restore_buffers=False).train()
    good = load(tmp_path / 'last_good.pth')['state_dict']
    assert not torch.equal(good['bn.running_mean'], model.weights_before[2]['bn.running_mean'])
    assert good['bn.num_batches_tracked'] == 3
    assert torch.equal(good['linear.weight'], model.weights_before[2]['linear.weight'])


def test_last_good_resumes_at_the_bad_iteration(tmp_path):
    """The saved model is a real resume point: iteration 3 is replayed (here finite)."""
    with pytest.raises(NonFiniteLossError):
        toy_runner(tmp_path / 'a', ToyModel(bad_call=3)).train()
    model = ToyModel()
    toy_runner(tmp_path / 'b', model, max_iters=4,
               resume_from=str(tmp_path / 'a' / 'last_good.pth')).train()
    assert model.calls == 2  # iterations 3 and 4
    assert model.samples_seen[0][0] == 'sample_idx=4 img_path=img_4.png'


@pytest.mark.parametrize('bad_call, bad_value, expected', [
    (1, float('inf'), 'loss_b=inf'),
    (2, float('-inf'), 'loss_b=-inf'),
])
def test_inf_is_reported_too(tmp_path, bad_call, bad_value, expected):
    model = ToyModel(bad_call=bad_call, bad_value=bad_value)
    with pytest.raises(NonFiniteLossError) as info:
        toy_runner(tmp_path, model).train()
    assert f'non-finite loss at iteration {bad_call}:' in str(info.value)
    assert expected in str(info.value)
    good = load(tmp_path / 'last_good.pth')
    assert good['meta']['iter'] == bad_call - 1
    for k, v in model.weights_before[bad_call - 1].items():
        assert torch.equal(good['state_dict'][k], v)


def test_a_sum_that_overflows_is_reported_as_such(tmp_path):
    # at iteration 2 both terms are 2e38, finite in float32 (max 3.4e38); their sum is inf
    model = ToyModel(bad_call=2, bad_term=None, bad_value=2e38)
    with pytest.raises(NonFiniteLossError) as info:
        toy_runner(tmp_path, model).train()
    assert 'iteration 2:' in str(info.value)
    assert 'loss_a' not in str(info.value) and 'loss_b' not in str(info.value)
    assert 'loss (sum of the finite terms)=inf' in str(info.value)


def test_finite_training_is_untouched(tmp_path):
    runs = {}
    for hook in (True, False):
        model = ToyModel()
        toy_runner(tmp_path / str(hook), model, max_iters=4, hook=hook).train()
        runs[hook] = (model, scalars(tmp_path / str(hook)))
    (with_hook, rows_with), (without, rows_without) = runs[True], runs[False]
    assert with_hook.wrapped_during_training == [True] * 4
    assert without.wrapped_during_training == [False] * 4
    assert 'parse_losses' not in with_hook.__dict__  # removed in after_train
    for k, v in without.state_dict().items():
        assert torch.equal(with_hook.state_dict()[k], v), k
    assert [r['loss'] for r in rows_with] == [r['loss'] for r in rows_without]
    assert not (tmp_path / 'True' / 'last_good.pth').exists()


def test_unwraps_model_wrappers_and_rejects_models_without_parse_losses(tmp_path):
    inner = ToyModel()
    runner = types.SimpleNamespace(model=nn.DataParallel(inner))  # an mmengine MODEL_WRAPPER
    hook = NonFiniteLossHook()
    hook.before_train(runner)
    hook.before_train(runner)  # idempotent: one wrapper, not two
    assert 'parse_losses' in inner.__dict__
    hook.after_train(runner)
    assert 'parse_losses' not in inner.__dict__
    with pytest.raises(TypeError, match='parse_losses'):
        hook.before_train(types.SimpleNamespace(model=nn.Linear(1, 1)))
    with pytest.raises(ValueError, match='plain file name'):
        NonFiniteLossHook(filename='sub/last.pth')


# --------------------------------------------------------------------------- two ranks
class RankRunner:
    """What the hook reads of a runner on one rank of a 2-rank job (the hook is real)."""

    def __init__(self, model, work_dir, rank):
        self.model, self.work_dir, self.iter, self.epoch = model, work_dir, 6, 0
        self.train_loop = self.param_schedulers = None
        self.saved = []
        self.logger = MMLogger.get_instance(f'nonfinite_rank{rank}_{uuid.uuid4().hex}')

    def save_checkpoint(self, out_dir, filename, **kwargs):
        self.saved.append((filename, kwargs['meta'], kwargs['save_param_scheduler']))


def _rank_worker(rank, port, out_dir):
    import torch.distributed as torch_dist
    torch_dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                                  world_size=2)
    try:
        model = ToyModel()
        runner = RankRunner(model, out_dir, rank)
        hook = NonFiniteLossHook()
        hook.before_train(runner)
        batch = dict(data_samples=[Samples()[i]['data_samples'] for i in (2 * rank, 2 * rank + 1)])
        hook.before_train_iter(runner, 6, batch)
        value = 1.0 if rank == 0 else float('nan')  # only rank 1 goes bad
        losses = dict(loss_a=torch.tensor(1.0), loss_b=torch.tensor(value))
        try:
            model.parse_losses(losses)
            result = dict(raised=False)
        except NonFiniteLossError as e:
            result = dict(raised=True, message=str(e), saved=runner.saved,
                          wrapped='parse_losses' in model.__dict__)
        with open(os.path.join(out_dir, f'rank{rank}.json'), 'w') as f:
            json.dump(result, f)
    finally:
        torch_dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_ranks_stop_together_naming_the_bad_rank(tmp_path):
    # fork: the ranks start at once with everything imported (only tiny tensors are used)
    mp.start_processes(_rank_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True,
                       start_method='fork')
    r0 = json.load(open(tmp_path / 'rank0.json'))
    r1 = json.load(open(tmp_path / 'rank1.json'))
    # the finite rank stops too (otherwise it would wait in the next gradient all-reduce)
    assert r0['raised'] and r1['raised']
    assert r0['message'] == r1['message']
    msg = r0['message']
    assert 'iteration 7:' in msg and 'loss_b=nan on rank 1' in msg
    assert 'sample_idx=2 img_path=img_2.png, sample_idx=3 img_path=img_3.png' in msg
    assert 'sample_idx=0' not in msg and 'rank 0' not in msg
    # each rank asked for the save (Runner.save_checkpoint writes on the master rank only)
    assert r0['saved'] == r1['saved'] == [['last_good.pth', {'epoch': 0, 'iter': 6}, False]]
    assert not r0['wrapped'] and not r1['wrapped']


# --------------------------------------------------------------------------- SKD-WM3D
@MODELS.register_module(name='NaNAtThirdIterSKDWM3D_test')
class NaNAtThirdIterSKDWM3D(SKDWM3D):
    """SKDWM3D whose ``student.loss_depth`` is NaN at the third training forward (the
    synthetic NaN source: the real losses are NaN-proof by construction)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls, self.weights_before, self.samples_seen = 0, [], []

    def loss(self, batch_inputs, batch_data_samples):
        self.calls += 1
        self.weights_before.append({k: v.clone() for k, v in self.state_dict().items()})
        self.samples_seen.append([s.metainfo['sample_idx'] for s in batch_data_samples])
        losses = super().loss(batch_inputs, batch_data_samples)
        if self.calls == 3:
            losses['student.loss_depth'] = losses['student.loss_depth'] * float('nan')
        return losses


def test_skd_wm3d_synth_run_stops_at_the_nan(synth_data, tmp_path):
    cfg = small_synth_cfg(synth_data, tmp_path, max_iters=6, batch_size=2)
    cfg.model.type = 'NaNAtThirdIterSKDWM3D_test'
    cfg.default_hooks.checkpoint.interval = 2
    cfg.custom_hooks = list(cfg.custom_hooks) + [dict(type='NonFiniteLossHook')]
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    cfg.visualizer.name = cfg.experiment_name = f'nonfinite_synth_{uuid.uuid4().hex[:8]}'
    cfg.randomness = dict(seed=0)
    runner = Runner.from_cfg(cfg)
    with pytest.raises(NonFiniteLossError) as info:
        runner.train()
    model = runner.model
    msg = str(info.value)
    assert model.calls == 3
    assert 'non-finite loss at iteration 3:' in msg
    assert 'student.loss_depth=nan' in msg
    # every other term (teacher, distillation) was finite and is not named
    assert msg.count('=nan') == 1 and 'teacher.' not in msg
    ids = model.samples_seen[2]
    for i in ids:
        assert f'sample_idx={i} img_path=' in msg
    assert msg.count('sample_idx=') == len(ids) == 2
    good = load(tmp_path / 'last_good.pth')
    assert good['meta']['iter'] == 2
    for k, v in model.weights_before[2].items():
        assert torch.equal(good['state_dict'][k], v), k
        if v.is_floating_point():
            assert torch.isfinite(good['state_dict'][k]).all(), k
    assert good['grad_modulation_hook']['num_updates'] == 2  # hooks' state comes along
    assert (tmp_path / 'iter_2.pth').exists() and not (tmp_path / 'iter_4.pth').exists()
