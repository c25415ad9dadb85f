"""Benchmarks: weak SKD-WM3D against full supervision, the ablations, and speed.

Trains each run of ``RUNS`` on the embedded synthetic data set with the same backbone, data,
schedule and seed (``tools/train.py`` in a subprocess), evaluates it with the KITTI metric
(``tools/test.py``), measures inference latency / FLOPs / parameters of what runs at
inference, and training time per iteration / peak memory, and writes ``docs/benchmarks.md``::

    python tools/benchmarks/run_benchmarks.py                 # the full set (about 2 hours)
    python tools/benchmarks/run_benchmarks.py --quick         # a few iterations each, tiny data
    python tools/benchmarks/run_benchmarks.py --runs skd,full # a subset

``--quick`` proves the path works (the test suite runs it); its figures mean nothing.
"""
import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable


@dataclass
class Run:
    key: str
    title: str
    config: str
    train_from: Optional[str] = None  # evaluate another run's checkpoint instead of training


RUNS = [
    Run('skd', '1. SKD-WM3D (everything on)', 'configs/skd_wm3d_synth.py'),
    Run('student', '2. Student alone, weak losses', 'configs/benchmarks/student_only_synth.py'),
    Run('no_gtm', '3. SKD-WM3D without GTM (no hook)', 'configs/benchmarks/no_gtm_synth.py'),
    Run('no_unc', '4. SKD-WM3D, plain distillation', 'configs/benchmarks/no_uncertainty_synth.py'),
    Run('teacher', '5. Teacher at test time (run 1, with depth maps)',
        'configs/benchmarks/teacher_test_synth.py', train_from='skd'),
    Run('full', '6. Fully supervised student (3D labels)',
        'configs/benchmarks/full_supervision_synth.py'),
    Run('smoke', "7. mmdet3d's SMOKE, fully supervised (a known peer)",
        'configs/benchmarks/smoke_full_synth.py'),
]
# (metric key suffix, column title)
COLUMNS = [('Car_3D_AP40_{d}_strict', 'Car 3D@0.7'), ('Car_BEV_AP40_{d}_strict', 'Car BEV@0.7'),
           ('Car_3D_AP40_{d}_loose', 'Car 3D@0.5'), ('Car_BEV_AP40_{d}_loose', 'Car BEV@0.5'),
           ('Car_2D_AP40_{d}_strict', 'Car 2D@0.7')]
# Pedestrian and Cyclist, moderate only: KITTI's 2D IoU 0.5 and its loose 3D/BEV IoU 0.25
SMALL_COLUMNS = [(f'{c}_{k}_AP40_{{d}}_{s}', f'{c} {k}@{t}')
                 for c in ('Pedestrian', 'Cyclist')
                 for k, s, t in (('3D', 'loose', '0.25'), ('BEV', 'loose', '0.25'),
                                 ('2D', 'strict', '0.5'))]
PREFIX = 'Kitti metric/pred_instances_3d/KITTI/'
# Everything below this line in the existing report (the hand-written analysis) is kept when
# the report is rewritten.
NOTES_MARKER = '<!-- notes below are kept when run_benchmarks.py rewrites this page -->'


def machine() -> str:
    cpu = 'unknown CPU'
    try:
        cpu = next(line.split(':', 1)[1].strip() for line in open('/proc/cpuinfo')
                   if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    return f'{cpu}, {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}'


def data_options(data: Path, input_size=None) -> List[str]:
    root = f'{data}/'
    opts = [f'{k}.dataset.data_root={root}' for k in
            ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    opts += [f'val_evaluator.ann_file={root}kitti_infos_val.pkl',
             f'test_evaluator.ann_file={root}kitti_infos_val.pkl']
    return opts


def run_cmd(cmd: List[str], log: Path) -> float:
    """Run ``cmd`` (output to ``log``), raise with the log's end on failure; wall seconds."""
    t0 = time.time()
    with open(log, 'w') as f:
        rc = subprocess.call(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
    if rc != 0:
        tail = log.read_text()[-3000:]
        raise RuntimeError(f'command failed ({rc}): {shlex.join(cmd)}\n{tail}')
    return time.time() - t0


def read_test_metrics(work_dir: Path) -> Dict[str, float]:
    """The metrics of the latest ``tools/test.py`` run in ``work_dir``."""
    files = sorted(work_dir.glob('*/*.json'))
    if not files:
        raise RuntimeError(f'no metrics json under {work_dir}')
    return json.loads(files[-1].read_text().splitlines()[-1])


RESULT_FILE = 'result.json'  # each run's figures, next to its checkpoint


def checkpoint(wdir: Path, iters: int) -> Path:
    """The checkpoint a run's training leaves (the hook saves once, at the last iteration)."""
    return wdir / f'iter_{iters}.pth'


def run_commands(run: Run, args, wdir: Path, ckpt: Optional[Path] = None):
    """``(train command or None, test command)`` of one run; ``ckpt`` is the checkpoint of
    ``run.train_from`` for a run that trains nothing."""
    opts = data_options(args.data) + [
        f'train_cfg.max_iters={args.iters}', f'train_cfg.val_interval={args.iters + 1}',
        f'default_hooks.checkpoint.interval={args.iters}', 'randomness.seed=0',
        # the config's step schedule follows its own max_iters; keep it at 80 % of ours
        f'param_scheduler.1.end={args.iters}',
        f'param_scheduler.1.milestones=[{max(1, int(0.8 * args.iters))}]',
        f'train_dataloader.batch_size={args.batch_size}'] + args.cfg_options
    train = None
    if run.train_from is None:
        train = [PY, 'tools/train.py', run.config, '--work-dir', str(wdir), '--cfg-options',
                 *opts]
        ckpt = checkpoint(wdir, args.iters)
    test = [PY, 'tools/test.py', run.config, str(ckpt), '--work-dir', str(wdir / 'test'),
            '--cfg-options', *data_options(args.data), *args.cfg_options]
    return train, test


def train_and_test(run: Run, args, work: Path, ckpts: Dict[str, Path]) -> dict:
    """Train (unless ``run.train_from``) and test one run; its figures are also saved in
    ``work/<key>/result.json``, which ``--reuse`` reads back instead of running again when
    the schedule matches."""
    wdir = work / run.key
    wdir.mkdir(parents=True, exist_ok=True)
    saved = wdir / RESULT_FILE
    if args.reuse and saved.exists():
        res = json.loads(saved.read_text())
        if (res.get('iters'), res.get('batch_size')) == (args.iters, args.batch_size):
            if run.train_from is None:
                ckpts[run.key] = checkpoint(wdir, args.iters)
            print(f'[bench]   reused {saved}', flush=True)
            return res
    if run.train_from is not None and run.train_from not in ckpts:
        raise RuntimeError(f'{run.key}: run {run.train_from} left no checkpoint')
    train_cmd, test_cmd = run_commands(run, args, wdir, ckpts.get(run.train_from))
    cmds, train_s = [test_cmd], 0.0
    if train_cmd:
        cmds.insert(0, train_cmd)
        train_s = run_cmd(train_cmd, wdir / 'train.log')
        ckpts[run.key] = checkpoint(wdir, args.iters)
    test_s = run_cmd(test_cmd, wdir / 'test.log')
    metrics = read_test_metrics(wdir / 'test')
    res = dict(train_s=train_s, test_s=test_s, metrics=metrics,
               commands=[shlex.join(c) for c in cmds], iters=args.iters,
               batch_size=args.batch_size)
    saved.write_text(json.dumps(res, indent=1))
    return res


# ---------------------------------------------------------------------------- speed probes
def build_model(config: str):
    import torch
    from mmengine.config import Config
    from mmdet3d.registry import MODELS
    import mmdet3d_skd  # noqa: F401
    from mmdet3d.utils import register_all_modules
    register_all_modules()
    torch.manual_seed(0)
    return MODELS.build(Config.fromfile(str(REPO / config)).model)


def probe_batch(batch_size: int, hw=(128, 384), boxes=4):
    """A synthetic training batch: images, a ground-plane depth map and 2D boxes."""
    import torch
    from mmengine.structures import InstanceData
    from mmdet3d.structures import Det3DDataSample
    h, w = hw
    k = [[w * 0.58, 0, w * 0.49, 0], [0, w * 0.58, h * 0.46, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    v = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
    horizon = h * 0.46
    depth = torch.where(v > horizon + 1, k[1][1] * 1.65 / (v - horizon).clamp(min=1),
                        torch.zeros(()))
    samples = []
    for i in range(batch_size):
        s = Det3DDataSample(metainfo=dict(cam2img=k, batch_input_shape=hw, img_path=f'{i}'))
        gt = InstanceData()
        x = torch.linspace(0.1, 0.8, boxes) * w
        gt.bboxes = torch.stack([x, torch.full_like(x, h * 0.4), x + w * 0.1,
                                 torch.full_like(x, h * 0.6)], 1)
        gt.labels = torch.arange(boxes) % 3
        s.gt_instances = gt
        s.gt_instances_3d = InstanceData()
        samples.append(s)
    torch.manual_seed(0)
    inputs = {'imgs': torch.randn(batch_size, 3, h, w),
              'depth_maps': depth[None, None].repeat(batch_size, 1, 1, 1)}
    return inputs, samples


def inference_probe(reps: int) -> dict:
    """Latency of run 1's student vs run 6's plain detector, alternating in one process."""
    import torch
    from mmengine.analysis import get_model_complexity_info
    config = {r.key: r.config for r in RUNS}
    models = {'skd': build_model(config['skd']), 'full': build_model(config['full'])}
    inputs, samples = probe_batch(1)
    image_only = {'imgs': inputs['imgs']}
    times = {k: [] for k in models}
    with torch.no_grad():
        for m in models.values():
            m.eval()
            m.predict(image_only, samples)  # warm-up
        for _ in range(reps):
            for key, m in models.items():
                t0 = time.perf_counter()
                m.predict(image_only, samples)
                times[key].append(time.perf_counter() - t0)
    out = {}
    for key, m in models.items():
        info = get_model_complexity_info(m, inputs=(image_only, ), show_table=False,
                                         show_arch=False)
        runs_at_inference = [m.backbone, m.neck, m.bbox_head]
        out[key] = dict(latency_ms=1e3 * statistics.median(times[key]),
                        flops=info['flops'],
                        params=sum(p.numel() for mod in runs_at_inference
                                   for p in mod.parameters()))
    out['latency_ratio'] = out['skd']['latency_ms'] / out['full']['latency_ms']
    return out


def train_probe(reps: int) -> dict:
    """Time per training iteration of run 1 vs run 2, alternating in one process."""
    import torch
    config = {r.key: r.config for r in RUNS}
    models = {'skd': build_model(config['skd']), 'student': build_model(config['student'])}
    inputs, samples = probe_batch(8)
    opts = {k: torch.optim.Adam(m.parameters(), 1e-4) for k, m in models.items()}
    times = {k: [] for k in models}

    def step(key):
        m, opt = models[key], opts[key]
        m.train()
        t0 = time.perf_counter()
        losses = m.loss(inputs, samples)
        opt.zero_grad()
        sum(v for n, v in losses.items() if 'loss' in n).backward()
        opt.step()
        return time.perf_counter() - t0

    for key in models:
        step(key)  # warm-up
    for _ in range(reps):
        for key in models:
            times[key].append(step(key))
    out = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    return dict(iter_ms=out, ratio=out['skd'] / out['student'])


def peak_memory_mib(key: str, reps: int) -> float:
    """Peak resident memory that ``reps`` training iterations of one run add, in MiB, measured
    in a fresh process (see :func:`memory_child`)."""
    code = (f'import sys; sys.path.insert(0, {str(REPO / "tools" / "benchmarks")!r}); '
            f'import run_benchmarks as rb; rb.memory_child({key!r}, {reps})')
    out = subprocess.run([PY, '-c', code], cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return float(out.stdout.strip().splitlines()[-1])


def _proc_status_kib(field: str) -> int:
    """``VmRSS`` / ``VmHWM`` of this process from ``/proc/self/status``, in KiB."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'/proc/self/status has no {field}')


def memory_child(key: str, reps: int) -> None:
    """Print the training iterations' peak RSS above the RSS before them, in MiB.

    The process-lifetime peak (``ru_maxrss``) is set by the imports and the model build and
    hides training (both runs read 1503 MiB); so the peak is reset (Linux
    ``/proc/self/clear_refs``, value 5) once the model and the batch exist, and the reported
    figure is the new peak (``VmHWM``) minus the RSS at that point.
    """
    import gc

    import torch
    config = next(r.config for r in RUNS if r.key == key)
    m = build_model(config)
    m.train()
    inputs, samples = probe_batch(8)
    opt = torch.optim.Adam(m.parameters(), 1e-4)
    gc.collect()
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')
    base = _proc_status_kib('VmRSS')
    for _ in range(reps):
        losses = m.loss(inputs, samples)
        opt.zero_grad()
        sum(v for n, v in losses.items() if 'loss' in n).backward()
        opt.step()
    print((_proc_status_kib('VmHWM') - base) / 1024)


# ---------------------------------------------------------------------------- report
def fmt(v: Optional[float]) -> str:
    """An AP in percent: two decimals (AP40s below 1 % are common early in training)."""
    return '-' if v is None else f'{v:.2f}'


def ap(metrics: dict, pattern: str, diff: str) -> Optional[float]:
    """KittiMetric's AP, in percent (0-100) as the metric reports it."""
    v = metrics.get(PREFIX + pattern.format(d=diff))
    return None if v is None else float(v)


def write_report(path: Path, results: dict, speed: dict, args, wall: float,
                 failed: Optional[Dict[str, str]] = None) -> None:
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=REPO,
                            capture_output=True, text=True).stdout.strip()
    lines = ['# Benchmarks', '',
             f'Written by `{shlex.join(["python", "tools/benchmarks/run_benchmarks.py"] + sys.argv[1:])}`'
             f' at commit `{commit}` on {machine()}; total wall time {wall / 60:.1f} min.', '',
             f'Data: `{os.path.relpath(args.data, REPO)}` (embedded synthetic KITTI-format set, see '
             'docs/synthetic_data.md); schedule: '
             f'{args.iters} iterations, batch {args.batch_size}, seed 0, for every run.', '']
    if args.quick:
        lines += ['**Quick mode: a few iterations on a tiny data set, to prove the path works. '
                  'These figures mean nothing.**', '']
    lines += ['## Accuracy (KITTI AP40 in percent on the val split, Car; '
              'easy / moderate / hard)', '',
              '| run | ' + ' | '.join(t for _, t in COLUMNS) + ' | train (min) |',
              '|---|' + '---|' * (len(COLUMNS) + 1)]
    failed = failed or {}
    for run in RUNS:
        if run.key in failed:
            lines.append(f'| {run.title} | failed: `{failed[run.key][:200]}` |'
                         + ' |' * len(COLUMNS))
        if run.key not in results:
            continue
        r = results[run.key]
        cells = [' / '.join(fmt(ap(r['metrics'], p, d)) for d in ('easy', 'moderate', 'hard'))
                 for p, _ in COLUMNS]
        lines.append(f'| {run.title} | ' + ' | '.join(cells) + f' | {r["train_s"] / 60:.1f} |')
    lines += ['']
    def car_3d05(key: str) -> float:  # Car 3D AP40@0.5, moderate
        return ap(results[key]['metrics'], COLUMNS[2][0], 'moderate') or 0.0

    if 'skd' in results and 'full' in results:
        a, b = car_3d05('skd'), car_3d05('full')
        lines += [f'Run 1 / run 6, Car 3D AP40@0.5 moderate: {a / b:.2f} (target >= 0.8)'
                  if b > 0 else 'Run 6 scored 0: no ratio.', '']
    if 'skd' in results and 'student' in results:
        lines += [f'Run 1 / run 2, Car 3D AP40@0.5 moderate: {car_3d05("skd"):.2f} vs '
                  f'{car_3d05("student"):.2f} (target: run 1 clearly above)', '']
    if results:
        lines += ['Pedestrian and Cyclist (moderate; KITTI AP40 in percent):', '',
                  '| run | ' + ' | '.join(t for _, t in SMALL_COLUMNS) + ' |',
                  '|---|' + '---|' * len(SMALL_COLUMNS)]
        for run in RUNS:
            if run.key in results:
                m = results[run.key]['metrics']
                lines.append(f'| {run.title} | ' + ' | '.join(
                    fmt(ap(m, p, 'moderate')) for p, _ in SMALL_COLUMNS) + ' |')
        lines += ['']
    if speed:
        inf, tr = speed['inference'], speed['train']
        lines += ['## Speed and size', '',
                  '| what | run 1 (SKD-WM3D student) | run 6 / run 2 | ratio | target |',
                  '|---|---|---|---|---|',
                  f'| inference latency, 1 image 384x128 (ms, median) | '
                  f'{inf["skd"]["latency_ms"]:.1f} | {inf["full"]["latency_ms"]:.1f} (run 6) | '
                  f'{inf["latency_ratio"]:.3f} | <= 1.02 |',
                  f'| FLOPs at inference | {inf["skd"]["flops"] / 1e9:.2f} G | '
                  f'{inf["full"]["flops"] / 1e9:.2f} G (run 6) | '
                  f'{inf["skd"]["flops"] / inf["full"]["flops"]:.3f} | equal |',
                  f'| parameters at inference | {inf["skd"]["params"] / 1e6:.2f} M | '
                  f'{inf["full"]["params"] / 1e6:.2f} M (run 6) | '
                  f'{inf["skd"]["params"] / inf["full"]["params"]:.3f} | equal |',
                  f'| training time per iteration, batch 8 (ms, median) | '
                  f'{tr["iter_ms"]["skd"]:.0f} | {tr["iter_ms"]["student"]:.0f} (run 2) | '
                  f'{tr["ratio"]:.2f} | <= 1.6 |',
                  f'| training peak memory above the model\'s (MiB RSS) | '
                  f'{speed["mem"]["skd"]:.0f} | '
                  f'{speed["mem"]["student"]:.0f} (run 2) | '
                  f'{speed["mem"]["skd"] / speed["mem"]["student"]:.2f} | |', '',
                  'Latency and iteration times are measured in one process, alternating the two '
                  'models on the same input; memory in a fresh process per model (peak RSS of 5 '
                  'training iterations above the RSS once the model and batch exist).', '']
    lines += ['## KITTI metric on the CPU', '',
              'The time ratio of `CPUKittiMetric` to mmdet3d\'s `KittiMetric` under '
              '`NUMBA_ENABLE_CUDASIM=1` on the same predictions (equal numbers) is measured by '
              '`python tools/benchmarks/bench_kitti_metric.py --frames 300` (about 8 minutes) '
              'and written into [kitti_metric_cpu.md](kitti_metric_cpu.md).', '']
    lines += ['## Commands', '']
    for run in RUNS:
        if run.key in results:
            lines += [f'- {run.title} ({results[run.key]["train_s"] / 60:.1f} min train, '
                      f'{results[run.key]["test_s"] / 60:.1f} min test):']
            # paths relative to the repository root, so the commands work on any clone
            lines += [f'  `{c.replace(str(REPO) + "/", "")}`'
                      for c in results[run.key]['commands']]
    notes = ''
    if path.exists() and NOTES_MARKER in path.read_text():
        notes = path.read_text().split(NOTES_MARKER, 1)[1]
    lines += ['', NOTES_MARKER]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('\n'.join(lines) + (notes if notes else '\n'))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data', type=Path, default=REPO / 'data' / 'synth_kitti')
    p.add_argument('--iters', type=int, default=1000)
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--runs', default=','.join(r.key for r in RUNS))
    p.add_argument('--work-dir', type=Path, default=REPO / 'work_dirs' / 'bench')
    p.add_argument('--out', type=Path, default=REPO / 'docs' / 'benchmarks.md')
    p.add_argument('--quick', action='store_true')
    p.add_argument('--no-speed', action='store_true')
    p.add_argument('--reuse', action='store_true',
                   help='take a run whose work dir holds a result.json of the same schedule '
                        'instead of running it again (a set cut short goes on where it stopped)')
    p.add_argument('--cfg-options', nargs='*', default=[])
    args = p.parse_args(argv)
    if args.quick:
        args.iters, args.batch_size = 2, 2
        args.cfg_options += ['train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
                             'test_dataloader.num_workers=0',
                             'train_dataloader.persistent_workers=False',
                             'val_dataloader.persistent_workers=False',
                             'test_dataloader.persistent_workers=False']
    args.work_dir.mkdir(parents=True, exist_ok=True)
    if not (args.data / 'kitti_infos_val.pkl').exists():  # generate the data set when missing
        size = ['--num-train', '16', '--num-val', '8', '--width', '621', '--height', '188'] \
            if args.quick else []
        run_cmd([PY, 'tools/generate_synthetic.py', '--out', str(args.data), '--workers', '2',
                 '--no-progress', *size], args.work_dir / 'generate.log')
    t0 = time.time()
    wanted = set(args.runs.split(','))
    results, ckpts, failed = {}, {}, {}
    for run in RUNS:
        if run.key in wanted or any(r.train_from == run.key for r in RUNS if r.key in wanted):
            print(f'[bench] {run.title}', flush=True)
            try:
                results[run.key] = train_and_test(run, args, args.work_dir, ckpts)
            except RuntimeError as e:  # one failed run must not lose the others' figures
                print(f'[bench]   FAILED: {e}', flush=True)
                failed[run.key] = str(e).splitlines()[0]
    speed = {}
    if not args.no_speed:
        reps = 3 if args.quick else 30
        print('[bench] speed probes', flush=True)
        speed = dict(inference=inference_probe(reps), train=train_probe(max(2, reps // 3)),
                     mem={k: peak_memory_mib(k, 2 if args.quick else 5)
                          for k in ('skd', 'student')})
    write_report(args.out, results, speed, args, time.time() - t0, failed)
    print(f'[bench] wrote {args.out}')
    if failed:
        raise SystemExit(f'[bench] failed runs: {sorted(failed)} (see their logs under '
                         f'{args.work_dir})')


if __name__ == '__main__':
    main()
