import glob
import json
import math
import os
import socket
import uuid

import pytest
import torch
import torch.multiprocessing as mp
from mmengine.logging import MessageHub, MMLogger
from mmengine.model import BaseModel
from torch import nn

from mmdet3d.registry import HOOKS
from mmdet3d_skd.engine.grad_modulation_hook import GradModulationHook, transfer_coefficients
from mmdet3d_skd.models.grad_scale import scale_grad

G1 = math.tanh(1.0)  # 0.7616


# --------------------------------------------------------------------------- harness
class CoefficientSink(nn.Module):
    """The smallest model the hook can drive: records what it is told."""

    def __init__(self):
        super().__init__()
        self.received = []

    def set_transfer_coefficients(self, teacher, student, distill):
        self.received.append((teacher, student, distill))


class FakeRunner:
    """Only the attributes the hook reads; the hook and the MessageHub are real."""

    def __init__(self, model):
        self.model = model
        self.iter = 0
        name = f'gtm_test_{uuid.uuid4().hex}'
        self.message_hub = MessageHub.get_instance(name)
        self.logger = MMLogger.get_instance(name)


def drive(hook, runner, losses):
    """Feed (L_T, L_S) pairs through after_train_iter; return the coefficients after each."""
    out = []
    for lt, ls in losses:
        hook.after_train_iter(runner, runner.iter, None,
                              dict(loss=torch.tensor(lt + ls),
                                   weak_total_teacher=torch.tensor(lt),
                                   weak_total_student=ls))  # floats are accepted too
        runner.iter += 1
        out.append(hook.coefficients)
    return out


# --------------------------------------------------------------------------- schedule
def test_schedule_balanced_is_identity():
    assert transfer_coefficients(1.0, alpha=5.0, beta=2.0, k_min=0.1) == (1.0, 1.0, 1.0)


def test_schedule_student_lags():
    k_t, k_s, k_d = transfer_coefficients(1.5, alpha=2.0, beta=0.5, k_min=0.1)
    assert k_t == pytest.approx(1 - G1)
    assert k_s == 1.0
    assert k_d == pytest.approx(1 + 0.5 * G1)


def test_schedule_teacher_lags():
    k_t, k_s, k_d = transfer_coefficients(0.5, alpha=2.0, beta=0.5, k_min=0.1)
    assert k_t == 1.0
    assert k_s == pytest.approx(1 - G1)
    assert k_d == pytest.approx(1 - 0.5 * G1)


def test_schedule_clamps_at_k_min():
    k_t, k_s, k_d = transfer_coefficients(5.0, alpha=2.0, beta=1.0, k_min=0.1)
    assert (k_t, k_s) == (0.1, 1.0)
    assert k_d == pytest.approx(1 + math.tanh(8.0))
    k_t, k_s, k_d = transfer_coefficients(0.2, alpha=2.0, beta=2.0, k_min=0.1)
    assert (k_t, k_s, k_d) == (1.0, 0.1, 0.1)


# --------------------------------------------------------------------------- hook
def test_warmup_then_modulation_by_hand():
    model = CoefficientSink()
    runner = FakeRunner(model)
    hook = GradModulationHook(warmup_iters=2, alpha=3.0, beta=0.5, k_min=0.1, momentum=0.5,
                              interval=1)
    hook.before_train(runner)
    assert model.received == [(1.0, 1.0, 1.0)]
    coeffs = drive(hook, runner, [(2.0, 4.0), (2.0, 4.0), (1.0, 4.0)])
    # warm-up: all 1.0, references taken at the end of warm-up (EMAs 2 and 4)
    assert coeffs[:2] == [(1.0, 1.0, 1.0)] * 2
    assert (hook.ref_teacher, hook.ref_student) == (2.0, 4.0)
    # iter 3: EMA_T = 0.5 * 2 + 0.5 * 1 = 1.5 -> r_T = 0.75, r_S = 1, rho = 4/3
    assert hook.rho == pytest.approx(4.0 / 3.0)
    assert coeffs[2] == pytest.approx((1 - G1, 1.0, 1 + 0.5 * G1))
    # the model was told every iteration, the last value last
    assert len(model.received) == 4
    assert model.received[-1] == hook.coefficients
    hub = runner.message_hub
    assert hub.get_scalar('train/k_teacher').current() == pytest.approx(1 - G1)
    assert hub.get_scalar('train/k_student').current() == 1.0
    assert hub.get_scalar('train/k_distill').current() == pytest.approx(1 + 0.5 * G1)
    assert hub.get_scalar('train/rho').current() == pytest.approx(4.0 / 3.0)
    assert len(hub.get_scalar('train/k_teacher').data[0]) == 3  # logged every iteration


def test_teacher_lagging_and_nonfinite_losses_are_skipped():
    runner = FakeRunner(CoefficientSink())
    hook = GradModulationHook(warmup_iters=1, alpha=1.0, beta=1.0, momentum=0.0)
    drive(hook, runner, [(1.0, 1.0), (2.0, 1.0)])
    # momentum 0: r_T = 2, r_S = 1, rho = 0.5
    assert hook.rho == pytest.approx(0.5)
    g = math.tanh(0.5)
    assert hook.coefficients == pytest.approx((1.0, 1 - g, 1 - g))
    before = hook.state_dict()
    drive(hook, runner, [(float('nan'), 1.0)])
    assert hook.state_dict() == before


def test_errors_name_the_problem():
    hook = GradModulationHook(warmup_iters=1)
    runner = FakeRunner(nn.Linear(1, 1))
    with pytest.raises(TypeError, match='set_transfer_coefficients'):
        hook.before_train(runner)
    runner = FakeRunner(CoefficientSink())
    with pytest.raises(KeyError, match='weak_total_student'):
        hook.after_train_iter(runner, 0, None, dict(weak_total_teacher=torch.tensor(1.0)))
    with pytest.raises(ValueError, match='k_min'):
        GradModulationHook(k_min=1.5)


def test_unwraps_model_wrapper():
    inner = CoefficientSink()
    runner = FakeRunner(nn.DataParallel(inner))  # registered in MODEL_WRAPPERS by mmengine
    GradModulationHook().before_train(runner)
    assert inner.received == [(1.0, 1.0, 1.0)]


def test_state_roundtrip_through_checkpoint():
    runner = FakeRunner(CoefficientSink())
    hook = GradModulationHook(warmup_iters=2, alpha=2.0, momentum=0.8)
    losses = [(3.0, 3.0), (2.5, 3.0), (2.0, 3.1), (1.5, 2.9), (1.2, 3.0), (1.0, 2.8)]
    drive(hook, runner, losses[:3])
    ckpt = {}
    hook.before_save_checkpoint(runner, ckpt)
    saved = dict(ckpt['grad_modulation_hook'])
    rest = drive(hook, runner, losses[3:])

    model2 = CoefficientSink()
    runner2 = FakeRunner(model2)
    hook2 = GradModulationHook(warmup_iters=2, alpha=2.0, momentum=0.8)
    hook2.after_load_checkpoint(runner2, ckpt)
    assert hook2.state_dict() == saved
    assert model2.received == [tuple(saved['coefficients'])]
    rest2 = drive(hook2, runner2, losses[3:])
    assert rest2 == rest
    assert hook2.state_dict() == hook.state_dict()
    assert rest[-1][0] < 1.0  # the run did leave warm-up and modulate

    hook3 = GradModulationHook(restore_state=False)
    hook3.after_load_checkpoint(FakeRunner(CoefficientSink()), ckpt)
    assert hook3.ref_teacher is None and hook3.coefficients == (1.0, 1.0, 1.0)


# --------------------------------------------------------------------------- real Runner
class TinySKD(BaseModel):
    """A two-branch toy detector: shared encoder, teacher/student heads, GTM identities."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Linear(2, 4)
        self.teacher = nn.Linear(4, 1)
        self.student = nn.Linear(4, 1)
        self.k = (1.0, 1.0, 1.0)

    def set_transfer_coefficients(self, teacher, student, distill):
        self.k = (teacher, student, distill)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        feat = self.encoder(inputs)
        lt = (self.teacher(scale_grad(feat, self.k[0])) - 1.0).pow(2).mean()
        # the student's target is harder to reach: it lags
        ls = (self.student(scale_grad(feat, self.k[1])) - 3.0).abs().mean() + 1.0
        return dict(loss_teacher=lt, loss_student=ls,
                    weak_total_teacher=lt.detach(), weak_total_student=ls.detach())


class ConstantData(torch.utils.data.Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(inputs=torch.tensor([1.0, -0.5]))


def make_runner(work_dir, max_iters, resume=None):
    from mmengine.runner import Runner
    loader = dict(dataset=ConstantData(), sampler=dict(type='DefaultSampler', shuffle=False),
                  batch_size=2, num_workers=0, collate_fn=dict(type='default_collate'))
    return Runner(
        model=TinySKD(), work_dir=str(work_dir), train_dataloader=loader,
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05)),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1),
                           checkpoint=dict(type='CheckpointHook', interval=3,
                                           by_epoch=False)),
        custom_hooks=[dict(type='GradModulationHook', warmup_iters=2, alpha=2.0, beta=0.5,
                           momentum=0.5, interval=2)],
        default_scope='mmdet3d', resume=resume is not None, load_from=resume,
        experiment_name=f'gtm_{uuid.uuid4().hex[:8]}', randomness=dict(seed=0))


def gtm_hook(runner):
    return next(h for h in runner.hooks if isinstance(h, GradModulationHook))


def test_real_runner_logs_and_resumes(tmp_path):
    assert HOOKS.get('GradModulationHook') is GradModulationHook
    runner = make_runner(tmp_path / 'a', max_iters=6)
    runner.train()
    hook = gtm_hook(runner)
    assert hook.num_updates == 6
    assert runner.model.k == hook.coefficients
    assert hook.coefficients[0] < 1.0 and hook.coefficients[2] > 1.0  # the student lags
    log = open(glob.glob(str(tmp_path / 'a' / '*' / '*.log'))[0]).read()
    assert 'k_teacher:' in log and 'k_distill:' in log and 'rho:' in log
    assert 'GradModulationHook: iter 6' in log
    scalars = [json.loads(line) for line in
               open(glob.glob(str(tmp_path / 'a' / '*' / 'vis_data' / 'scalars.json'))[0])]
    assert scalars[-1]['k_teacher'] == pytest.approx(hook.coefficients[0])
    # the hook's state is plain floats/lists: loadable with weights_only=True
    ckpt = torch.load(str(tmp_path / 'a' / 'iter_3.pth'), map_location='cpu',
                      weights_only=True)
    assert ckpt['grad_modulation_hook']['num_updates'] == 3

    resumed = make_runner(tmp_path / 'b', max_iters=6, resume=str(tmp_path / 'a' / 'iter_3.pth'))
    resumed.train()
    hook_b = gtm_hook(resumed)
    assert hook_b.num_updates == 6
    for key, value in hook.state_dict().items():
        assert hook_b.state_dict()[key] == pytest.approx(value), key


# --------------------------------------------------------------------------- two ranks
RANK_LOSSES = {
    0: [(2.0, 2.0), (1.0, 2.0), (0.5, 2.0), (0.5, 3.0), (0.2, 2.0)],
    1: [(4.0, 1.0), (4.0, 1.0), (4.0, 1.0), (3.0, 0.5), (2.0, 1.0)],
}
HOOK_ARGS = dict(warmup_iters=2, alpha=2.0, beta=0.5, k_min=0.1, momentum=0.5, interval=0)


def _rank_worker(rank, port, out_dir):
    import torch.distributed as torch_dist
    torch_dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                                  world_size=2)
    try:
        model = CoefficientSink()
        hook = GradModulationHook(**HOOK_ARGS)
        coeffs = drive(hook, FakeRunner(model), RANK_LOSSES[rank])
        with open(os.path.join(out_dir, f'rank{rank}.json'), 'w') as f:
            json.dump(dict(coeffs=coeffs, received=model.received, rho=hook.rho), f)
    finally:
        torch_dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_ranks_apply_identical_coefficients(tmp_path):
    mp.spawn(_rank_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    r0 = json.load(open(tmp_path / 'rank0.json'))
    r1 = json.load(open(tmp_path / 'rank1.json'))
    assert r0 == r1
    # and they are what one process computes from the rank-averaged losses
    mean_losses = [((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
                   for a, b in zip(RANK_LOSSES[0], RANK_LOSSES[1])]
    expected = drive(GradModulationHook(**HOOK_ARGS), FakeRunner(CoefficientSink()),
                     mean_losses)
    assert [k for c in r0['coeffs'] for k in c] == pytest.approx(
        [k for c in expected for k in c])
    assert expected[-1] != (1.0, 1.0, 1.0)
    # a rank alone would have computed something else
    alone = drive(GradModulationHook(**HOOK_ARGS), FakeRunner(CoefficientSink()),
                  RANK_LOSSES[0])
    assert alone[-1] != pytest.approx(expected[-1])
