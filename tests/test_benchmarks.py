"""The benchmark script's quick mode: every path runs (weak training, the teacher at test
time, full supervision, the speed probes) and the report is written. Its numbers mean
nothing; the real figures come from ``tools/benchmarks/run_benchmarks.py`` (docs/benchmarks.md)."""
import math
import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / 'tools' / 'benchmarks'))
import run_benchmarks  # noqa: E402


def test_quick_benchmark_writes_the_report(synth_data, tmp_path):
    """Run 5 needs run 1's checkpoint: the shared 2D pretraining, both train/test paths, the
    learning curve's validations and the speed probes run; the report has the curves' table
    and plot."""
    out = tmp_path / 'benchmarks.md'
    run_benchmarks.main(['--quick', '--runs', 'teacher', '--data', str(synth_data),
                         '--work-dir', str(tmp_path / 'work'), '--out', str(out),
                         '--pretrain-iters', '2', '--curve-every', '1', '--curve-frames', '4'])
    text = out.read_text()
    assert 'Quick mode' in text
    for title in ('1. SKD-WM3D', '5. Teacher at test time', 'Shared 2D pretraining',
                  '## Learning curves'):
        assert title in text
    assert 'inference latency' in text and 'training time per iteration' in text
    work = tmp_path / 'work'
    assert (work / 'skd' / 'seed0' / 'iter_2.pth').exists()
    assert (work / 'pretrain' / 'encoder.pth').exists()
    assert (tmp_path / 'images' / 'benchmark_curves.png').stat().st_size > 1000
    import json
    res = json.loads((work / 'skd' / 'seed0' / run_benchmarks.RESULT_FILE).read_text())
    assert sorted(res['curve']) == ['1', '2'] and res['train_s'] > 0
    assert any('load_from=' in c and 'encoder.pth' in c for c in res['commands'])


def test_inference_costs_equal_a_plain_detector():
    """What runs at inference in SKD-WM3D is the plain student: same parameters and FLOPs."""
    speed = run_benchmarks.inference_probe(reps=1)
    assert speed['skd']['params'] == speed['full']['params']
    assert speed['skd']['flops'] == speed['full']['flops']


def test_report_keeps_the_hand_written_notes(tmp_path):
    """Rewriting the report replaces the tables and keeps what follows the notes marker."""
    from types import SimpleNamespace
    out = tmp_path / 'benchmarks.md'
    args = SimpleNamespace(data=tmp_path, iters=3, batch_size=2, quick=True, input_size=None)
    run_benchmarks.write_report(out, {}, {}, args, wall=60.0)
    assert run_benchmarks.NOTES_MARKER in out.read_text()
    out.write_text(out.read_text().replace('3 iterations', 'OLD TABLE') + '\n## Notes\nmine\n')
    run_benchmarks.write_report(out, {}, {}, args, wall=60.0)
    text = out.read_text()
    assert 'OLD TABLE' not in text and '3 iterations' in text
    assert text.endswith('## Notes\nmine\n') and text.count(run_benchmarks.NOTES_MARKER) == 1


def test_depth_target_benchmark_measures_against_the_truth(synth_data):
    """The depth-target benchmark scores every moderate car it finds against the exact truth;
    the exact-depth quantile 0 of a noisy map lies in front of the centre (negative bias)."""
    import depth_targets
    r = depth_targets.measure(synth_data, frames=8, quantile=0.25, depth_stride=1)
    assert 0 < r['valid'] <= r['cars']
    assert abs(r['bias']) < 2.0 and 0 <= r['within1'] <= 1
    near = depth_targets.measure(synth_data, frames=8, quantile=0.0, depth_stride=1)
    assert near['bias'] < r['bias']


def test_weak_losses_prefer_the_true_yaw_to_the_swapped_axis(synth_data):
    """At the true boxes of the synthetic val cars the projection and the pi-periodic
    orientation terms are smaller than with length and width swapped; the pi/2-periodic
    orientation term cannot tell the two apart."""
    import losses_at_truth
    r = losses_at_truth.measure(synth_data, frames=8, depth_stride=1)
    true, turned = r[0.0], r[90.0]
    assert true['cars'] == turned['cars'] > 0
    assert true['proj'] < turned['proj'] and true['orient_pi'] < turned['orient_pi']
    assert true['orient_half_pi'] == pytest.approx(turned['orient_half_pi'], abs=1e-4)


def test_error_breakdown_matches_cars_by_2d_overlap():
    """Hand case: one car found with a 2 m depth error, one missed, one found exactly."""
    import error_breakdown as eb
    import torch
    car = dict(bbox_label=2, occluded=0, truncated=0.0)
    gts = [dict(car, bbox=[0, 0, 100, 50], bbox_3d=[0, 0, 20.0]),
           dict(car, bbox=[500, 0, 560, 40], bbox_3d=[0, 0, 30.0]),
           dict(car, bbox=[200, 0, 300, 50], bbox_3d=[0, 0, 10.0])]
    boxes = torch.tensor([[0., 0., 100., 40.], [200., 0., 300., 50.], [900., 0., 950., 30.]])
    depths = torch.tensor([22.0, 10.0, 5.0])
    m = eb.match_cars(gts, boxes, depths)
    assert m[1] == {} and abs(m[0]['iou'] - 0.8) < 1e-6 and abs(m[0]['dz'] - 2.0) < 1e-6
    assert m[2] == dict(iou=1.0, dz=0.0)
    s = eb.summarise(m)
    assert abs(s['recall'] - 2 / 3) < 1e-9 and s['iou07'] == 1.0 and s['within1'] == 0.5
    assert eb.match_cars(gts[:1], torch.zeros(0, 4), torch.zeros(0)) == [{}]
    # with yaws: the box-height error and the yaw error modulo pi (the length axis)
    gts[0]['bbox_3d'] = [0, 0, 20.0, 4, 1.5, 1.6, 0.1]
    gts[2]['bbox_3d'] = [0, 0, 10.0, 4, 1.5, 1.6, 0.0]
    m = eb.match_cars(gts, boxes, depths, yaws=torch.tensor([0.1 + math.pi, math.pi / 2, 0.]))
    assert abs(m[0]['dh'] + 0.2) < 1e-6 and m[0]['dyaw'] < 1e-4  # 40 px for 50; heading flip
    assert abs(m[2]['dyaw'] - 90.0) < 1e-4  # length and width swapped
    s = eb.summarise(m)
    assert s['axis_ok'] == 0.5 and abs(s['dh_mae'] - 0.1) < 1e-6
    assert abs(eb.yaw_error_mod_pi(0.1, -0.1) - math.degrees(0.2)) < 1e-9
    assert not eb.is_moderate_car(dict(car, bbox=[0, 0, 10, 20]))  # 20 px tall: too small


def test_smoke_peer_trains_fully_supervised_and_validates(synth_data, tmp_path):
    """Run 7: mmdet3d's own SMOKE detector, head and pipeline on the synthetic set."""
    import json

    from mmengine.runner import Runner

    from tests.conftest import small_synth_cfg
    cfg = small_synth_cfg(synth_data, tmp_path / 'smoke', max_iters=2,
                          config='configs/benchmarks/smoke_full_synth.py')
    assert cfg.model.type == 'SMOKEMono3D' and cfg.model.bbox_head.type == 'SMOKEMono3DHead'
    Runner.from_cfg(cfg).train()
    rows = [json.loads(line) for f in (tmp_path / 'smoke').glob('*/vis_data/scalars.json')
            for line in f.read_text().splitlines()]
    losses = [r['loss'] for r in rows if 'loss' in r]
    assert len(losses) == 2 and all(v == v and abs(v) < 1e9 for v in losses)
    log = next((tmp_path / 'smoke').glob('*/*.log')).read_text()
    assert 'Car AP40@0.70, 0.70, 0.70' in log


def test_report_prints_kitti_ap_in_percent_as_the_metric_gives_it():
    """KittiMetric reports percent: 0.0555 is 0.0555 %, never 5.55 %."""
    key = run_benchmarks.PREFIX + 'Car_3D_AP40_moderate_loose'
    assert run_benchmarks.ap({key: 0.0555}, 'Car_3D_AP40_{d}_loose', 'moderate') == 0.0555
    assert run_benchmarks.fmt(0.0555) == '0.06' and run_benchmarks.fmt(41.0) == '41.00'


def _saved_result(wdir, iters, ap, seed=0):
    import json
    wdir.mkdir(parents=True)
    key = run_benchmarks.PREFIX + 'Car_3D_AP40_moderate_loose'
    (wdir / run_benchmarks.RESULT_FILE).write_text(json.dumps(dict(
        train_s=60.0, test_s=6.0, metrics={key: ap}, commands=['python tools/train.py X'],
        iters=iters, batch_size=8, pretrain_iters=0, input_size=None, seed=seed, curve={})))


def test_reuse_and_a_failed_run(tmp_path, monkeypatch):
    """A run saved with the same schedule is read back without running anything; a run that
    fails is reported as failed, the others' figures are still written, and the exit is an
    error."""
    import pytest
    (tmp_path / 'data').mkdir()
    (tmp_path / 'data' / 'kitti_infos_val.pkl').touch()
    work, out = tmp_path / 'work', tmp_path / 'benchmarks.md'
    _saved_result(work / 'skd' / 'seed0', iters=600, ap=12.5)
    _saved_result(work / 'full' / 'seed0', iters=300, ap=99.0)  # another schedule: run again
    ran = []

    def failing_cmd(cmd, log, core=None):
        ran.append(cmd)
        raise RuntimeError('command failed (1): tools/train.py full\nTraceback ...')

    monkeypatch.setattr(run_benchmarks, 'run_cmd', failing_cmd)
    with pytest.raises(SystemExit, match='full'):
        run_benchmarks.main(['--runs', 'skd,full', '--iters', '600', '--seeds', '0',
                             '--pretrain-iters', '0', '--curve-every', '0',
                             '--no-speed', '--data', str(tmp_path / 'data'),
                             '--work-dir', str(work), '--out', str(out)])
    assert len(ran) == 1 and 'configs/benchmarks/full_supervision_synth.py' in ran[0]
    assert '--resume' not in ran[0]
    text = out.read_text()
    assert '12.50' in text and '99.00' not in text
    assert '| 6. Fully supervised student (3D labels) | | failed: `command failed (1)' in text


def test_an_interrupted_run_resumes_from_its_last_checkpoint(tmp_path):
    """A training that left a last checkpoint (killed half-way) is started again with
    mmengine's --resume; the pretrained encoder is the start of every run."""
    from types import SimpleNamespace
    args = SimpleNamespace(data=tmp_path, iters=10, batch_size=2, curve_every=5,
                           work_dir=tmp_path, input_size=None, cfg_options=[])
    wdir = tmp_path / 'full' / 'seed1'
    wdir.mkdir(parents=True)
    run = run_benchmarks.RUN_BY_KEY['full']
    train, _ = run_benchmarks.run_commands(run, args, wdir, 1, encoder=tmp_path / 'enc.pth')
    assert '--resume' not in train and f'load_from={tmp_path}/enc.pth' in train
    assert 'randomness.seed=1' in train and 'train_cfg.val_interval=5' in train
    assert f'val_evaluator.ann_file={tmp_path}/{run_benchmarks.CURVE_ANN}' in train
    (wdir / 'last_checkpoint').write_text(str(wdir / 'iter_5.pth'))
    train, _ = run_benchmarks.run_commands(run, args, wdir, 1)
    assert '--resume' in train


def test_logged_training_time_and_curve_survive_a_resume(tmp_path):
    """Two log folders (a run killed and resumed): the time is the sum of both spans, the
    curve holds the validations of both."""
    import json
    for stamp, (t0, t1), step, v in (('20261204_100000', ('10:00:00', '10:05:00'), 5, 1.5),
                                     ('20261204_120000', ('12:00:00', '12:02:30'), 10, 3.0)):
        d = tmp_path / stamp / 'vis_data'
        d.mkdir(parents=True)
        (tmp_path / stamp / f'{stamp}.log').write_text(
            f'2026/12/04 {t0} - mmengine - INFO - start\n'
            f'2026/12/04 {t1} - mmengine - INFO - Iter(val)\n')
        (d / 'scalars.json').write_text(
            json.dumps({'loss': 1.0, 'step': step}) + '\n'
            + json.dumps({run_benchmarks.PREFIX + 'Car_3D_AP40_moderate_loose': v,
                          'step': step}) + '\n')
    assert run_benchmarks.logged_seconds(tmp_path) == 450.0
    curve = run_benchmarks.read_curve(tmp_path)
    assert sorted(curve) == [5, 10]
    assert curve[10][run_benchmarks.PREFIX + 'Car_3D_AP40_moderate_loose'] == 3.0


def test_seed_spread_decides_what_is_called_a_difference():
    key = run_benchmarks.PREFIX + 'Car_3D_AP40_moderate_loose'

    def res(*vals):
        return {i: dict(metrics={key: v}) for i, v in enumerate(vals)}
    assert run_benchmarks.spread([1.0, 2.0, 3.0]) == '2.00 (1.00-3.00)'
    assert run_benchmarks.spread([4.0]) == '4.00'
    apart = run_benchmarks.compare({'a': res(10, 11, 12), 'b': res(5, 6, 7)}, 'a', 'b')
    assert 'ratio 1.83' in apart and 'a difference' in apart
    overlap = run_benchmarks.compare({'a': res(10, 11, 12), 'b': res(5, 6, 10.5)}, 'a', 'b')
    assert 'no difference claimed' in overlap


def test_input_size_edits_every_resize_of_the_runs_pipelines():
    opts = run_benchmarks.size_options('configs/benchmarks/full_supervision_synth.py',
                                       (1280, 384))
    assert opts == ['train_dataloader.dataset.pipeline.4.img_scale=(1280,384)',
                    'val_dataloader.dataset.pipeline.1.img_scale=(1280,384)',
                    'test_dataloader.dataset.pipeline.1.img_scale=(1280,384)']
    assert run_benchmarks.size_options('configs/skd_wm3d_synth.py', None) == []


def test_the_shared_encoder_keeps_backbone_and_neck_only(tmp_path):
    import torch
    ckpt = tmp_path / 'iter_2.pth'
    torch.save({'state_dict': {'backbone.w': torch.ones(2), 'neck.b': torch.zeros(1),
                               'bbox_head.x': torch.ones(1)}, 'meta': {}}, ckpt)
    run_benchmarks.extract_encoder(ckpt, tmp_path / 'encoder.pth')
    state = torch.load(tmp_path / 'encoder.pth')['state_dict']
    assert sorted(state) == ['backbone.w', 'neck.b']


def test_smoke_peer_uses_a_loader_that_survives_empty_frames():
    """mmdet3d's KittiDataset raises IndexError on an image-based frame without objects; run 7
    loads through WeakKittiDataset(weak=False), the same dataset with that fixed."""
    from mmengine.config import Config
    cfg = Config.fromfile(str(REPO / 'configs' / 'benchmarks' / 'smoke_full_synth.py'))
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        assert loader.dataset.type == 'WeakKittiDataset' and loader.dataset.weak is False


def test_compare_curves_tables_and_plots_two_runs(tmp_path, capsys):
    """compare_curves.py: one table row per validation of each run, and the PNG."""
    import json

    import compare_curves
    key = run_benchmarks.PREFIX + 'Car_3D_AP40_moderate_loose'
    for name, vals in (('a', (1.0, 2.0)), ('b', (0.5, 4.0))):
        d = tmp_path / name / '20261204_100000' / 'vis_data'
        d.mkdir(parents=True)
        d.joinpath('scalars.json').write_text(''.join(
            json.dumps({key: v, 'step': step}) + '\n' for step, v in zip((5, 10), vals)))
    out = tmp_path / 'c.png'
    compare_curves.main([f'A={tmp_path / "a"}', f'B={tmp_path / "b"}', '--out', str(out)])
    text = capsys.readouterr().out
    assert '| A | 10 | 2.00 | - | - |' in text and '| B | 5 | 0.50 | - | - |' in text
    assert out.stat().st_size > 1000


def test_pinned_command_runs_on_one_core_with_one_thread(tmp_path):
    import os
    core = sorted(os.sched_getaffinity(0))[-1]
    log = tmp_path / 'pinned.log'
    code = 'import os; print(sorted(os.sched_getaffinity(0)), os.environ["OMP_NUM_THREADS"])'
    run_benchmarks.run_cmd([sys.executable, '-c', code], log, core=core)
    assert log.read_text().strip() == f'[{core}] 1'
    assert run_benchmarks.pinned(['x'], None) == (['x'], None)


def test_run_set_runs_in_parallel_on_distinct_cores_and_waits_for_a_source(monkeypatch):
    """Runs 1 and 6 start together on two cores; run 5 (run 1's checkpoint) only after run 1;
    a failed run is reported without losing the others."""
    import threading
    import time
    from types import SimpleNamespace
    log, lock = [], threading.Lock()

    def fake(run, seed, args, ckpts, encoder, core=None):
        with lock:
            log.append(('start', run.key, core))
        time.sleep(0.3)
        with lock:
            log.append(('end', run.key, core))
        if run.key == 'full':
            raise RuntimeError('boom\nmore')
        return dict(seed=seed)

    monkeypatch.setattr(run_benchmarks, 'train_and_test', fake)
    monkeypatch.setattr(run_benchmarks.os, 'sched_getaffinity', lambda pid: {0, 1})
    by = run_benchmarks.RUN_BY_KEY
    jobs = [(by['skd'], 0), (by['teacher'], 0), (by['full'], 0)]
    results, failed = run_benchmarks.run_set(jobs, SimpleNamespace(parallel=2), None)
    assert results == {'skd': {0: dict(seed=0)}, 'teacher': {0: dict(seed=0)}}
    assert failed == {'full': 'boom'}
    starts = {k: (i, c) for i, (e, k, c) in enumerate(log) if e == 'start'}
    assert {starts['skd'][1], starts['full'][1]} == {0, 1}  # together, one core each
    assert starts['full'][0] < log.index(('end', 'skd', starts['skd'][1]))
    assert starts['teacher'][0] > log.index(('end', 'skd', starts['skd'][1]))


def test_grad_norms_are_each_terms_gradient_into_the_encoder_only():
    """Hand case: loss_a = 3 w, loss_b = 4 w + 10 h (h a head parameter, not counted):
    norms 3 and 4 into the encoder (backbone w, neck v unused)."""
    import grad_norms
    import torch

    class Toy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = torch.nn.Linear(1, 1, bias=False)
            self.neck = torch.nn.Linear(1, 1, bias=False)
            self.head = torch.nn.Linear(1, 1, bias=False)

        def loss(self, inputs, samples):
            w, h = self.backbone.weight.sum(), self.head.weight.sum()
            return {'loss_a': 3 * w, 'loss_b': 4 * w + 10 * h, 'weak_total': w.detach()}

    norms = grad_norms.encoder_grad_norms(Toy(), dict(inputs=None, data_samples=None))
    assert norms == {'loss_a': pytest.approx(3.0), 'loss_b': pytest.approx(4.0)}
    text = grad_norms.table([norms, {'loss_a': 1.0, 'loss_b': 4.0}])
    assert text.splitlines()[2] == '| loss_b | 4 | 66.7 % |'
    assert text.splitlines()[3] == '| loss_a | 2 | 33.3 % |'


def test_bench_jobs_go_seed_by_seed_with_every_run_at_the_first_seed():
    """Seed 0 of every wanted run comes before any second seed (a set stopped early holds a
    whole table); later seeds only for the seeded runs and the runs testing their checkpoints."""
    jobs = run_benchmarks.bench_jobs({'skd', 'no_gtm', 'teacher', 'full'}, [0, 1],
                                     {'skd', 'full'})
    assert [(r.key, s) for r, s in jobs] == [
        ('skd', 0), ('no_gtm', 0), ('teacher', 0), ('full', 0),
        ('skd', 1), ('teacher', 1), ('full', 1)]


def test_losses_at_iters_averages_the_logged_window_and_a_resume_overrides(tmp_path):
    """Two starts of one run (the second resumed at step 100): the window (50, 100] averages
    the second start's rows; validation rows (no lr) are not training steps."""
    import json

    import losses_at_iters
    for stamp, rows in (('20260101_000000', [(50, 2.0), (100, 4.0)]),
                        ('20260101_010000', [(100, 3.0), (150, 1.0)])):
        d = tmp_path / 'run' / stamp / 'vis_data'
        d.mkdir(parents=True)
        lines = [json.dumps({'lr': 0.1, 'step': s, 'student.loss_heatmap': v}) for s, v in rows]
        lines.append(json.dumps({'step': 100, 'student.loss_heatmap': 99.0}))  # a val row
        (d / 'scalars.json').write_text('\n'.join(lines) + '\n')
    steps = losses_at_iters.logged_steps(tmp_path / 'run')
    assert sorted(steps) == [50, 100, 150]
    assert losses_at_iters.mean_at(steps, 'student.loss_heatmap', 100, 100) == 2.5
    assert losses_at_iters.mean_at(steps, 'student.loss_heatmap', 150, 50) == 1.0
    assert math.isnan(losses_at_iters.mean_at(steps, 'student.loss_heatmap', 400, 100))
    out = losses_at_iters.table([f'r={tmp_path / "run"}'], 'student.loss_heatmap', [100, 400],
                                100)
    assert out.splitlines()[-1] == '| r | 2.500 | - |'
    with pytest.raises(FileNotFoundError, match='scalars.json'):
        losses_at_iters.logged_steps(tmp_path)
