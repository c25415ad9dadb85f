"""End to end on generated data: weak training with mmengine's runner, KITTI AP at
validation, a checkpoint through the real ``mim test``, and ``--resume``."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from mmengine.runner import Runner

from tests.conftest import REPO, small_synth_cfg

VENV_BIN = Path(sys.executable).parent
# Terms that start away from their minimum and must fall; dims and orientation priors start
# at (nearly) zero by construction (dims at the class prior), distillation at zero (teacher
# and student heads start alike), so those are checked to stay finite instead.
MUST_FALL = ('loss_heatmap', 'loss_bbox2d', 'loss_giou2d', 'loss_depth', 'loss_align',
             'loss_proj')


def read_scalars(work_dir: Path):
    rows = []
    for f in sorted(work_dir.glob('*/vis_data/scalars.json')):
        rows += [json.loads(line) for line in f.read_text().splitlines()]
    return rows


def test_weak_training_lowers_the_losses_and_validation_prints_kitti_ap(synth_data, tmp_path):
    cfg = small_synth_cfg(synth_data, tmp_path / 'run', max_iters=120, batch_size=2)
    cfg.randomness = dict(seed=0)
    Runner.from_cfg(cfg).train()
    rows = [r for r in read_scalars(tmp_path / 'run') if 'student.loss_heatmap' in r]
    assert len(rows) == 120
    first, last = rows[:30], rows[-30:]
    for branch in ('student', 'teacher'):
        for term in MUST_FALL:
            key = f'{branch}.{term}'
            a, b = np.mean([r[key] for r in first]), np.mean([r[key] for r in last])
            assert b < a, f'{key} did not fall: {a:.4f} -> {b:.4f}'
        a = np.mean([r[f'weak_total_{branch}'] for r in first])
        b = np.mean([r[f'weak_total_{branch}'] for r in last])
        assert b < a, f'{branch} weak total: {a:.3f} -> {b:.3f}'
    for key in rows[-1]:
        if 'loss' in key:
            assert np.isfinite([r[key] for r in rows]).all(), key
    # the hook ran and logged its coefficients
    assert {'k_teacher', 'k_student', 'k_distill', 'rho'} <= set(rows[-1])
    log = next((tmp_path / 'run').glob('*/*.log')).read_text()
    assert 'Car AP40@0.70, 0.70, 0.70' in log and '3d   AP40' in log


def test_checkpoint_mim_test_and_resume(synth_data, tmp_path):
    """``mim train`` a few iterations, ``mim test`` the checkpoint, then ``--resume``."""
    work = tmp_path / 'ckpt'
    cfg = small_synth_cfg(synth_data, work, max_iters=2)
    cfg_file = tmp_path / 'cfg.py'
    cfg.dump(str(cfg_file))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    run = subprocess.run([str(VENV_BIN / 'mim'), 'train', 'mmdet3d', str(cfg_file)],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    ckpt = work / 'iter_2.pth'
    assert ckpt.exists()

    test = subprocess.run([str(VENV_BIN / 'mim'), 'test', 'mmdet3d', str(cfg_file),
                           '--checkpoint', str(ckpt), '--work-dir', str(tmp_path / 'test')],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    out = test.stdout + test.stderr
    assert test.returncode == 0, out[-3000:]
    assert 'Load checkpoint from' in out and 'Car AP40@0.70' in out

    resume = subprocess.run([str(VENV_BIN / 'python'), 'tools/train.py', str(cfg_file),
                             '--resume', '--cfg-options', 'train_cfg.max_iters=4',
                             'train_cfg.val_interval=100', 'default_hooks.checkpoint.interval=4'],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    out = resume.stdout + resume.stderr
    assert resume.returncode == 0, out[-3000:]
    assert 'resumed epoch: 0, iter: 2' in out
    assert (work / 'iter_4.pth').exists()
    assert 'Iter(train) [3/4]' in out  # continued from iteration 2, not from 0
