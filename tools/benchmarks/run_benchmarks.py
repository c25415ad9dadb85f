"""Benchmarks: weak SKD-WM3D against full supervision, the ablations, and speed.

Pretrains the shared encoder once on the 2D boxes alone (``--pretrain-iters``; weak-legal),
then trains each run of ``RUNS`` on the embedded synthetic data set from that encoder with the
same data and schedule, each of ``--seed-runs`` once per seed of ``--seeds``
(``tools/train.py`` in a subprocess, validating every ``--curve-every`` iterations on a fixed
subset of val for the learning curves), evaluates the final checkpoint on the whole val split
with the KITTI metric (``tools/test.py``), measures inference latency / FLOPs / parameters of
what runs at inference, and training time per iteration / peak memory, and writes
``docs/benchmarks.md`` (tables with the seeds' mean and range, the curves as a table and a
PNG)::

    python tools/benchmarks/run_benchmarks.py                 # the full set (make bench)
    python tools/benchmarks/run_benchmarks.py --quick         # a few iterations each, tiny data
    python tools/benchmarks/run_benchmarks.py --runs skd,full # a subset

Every piece of work is kept on disk: an interrupted set goes on where it stopped when run
again with the same arguments (a finished run is read back from its ``result.json``, an
unfinished one resumes from its last checkpoint with mmengine's ``--resume``).

``--quick`` proves the path works (the test suite runs it); its figures mean nothing.
"""
import argparse
import json
import os
import pickle
import platform
import queue
import re
import shlex
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
PRETRAIN_CONFIG = 'configs/benchmarks/pretrain_2d_synth.py'


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
RUN_BY_KEY = {r.key: r for r in RUNS}
# (metric key suffix, column title)
COLUMNS = [('Car_3D_AP40_{d}_strict', 'Car 3D@0.7'), ('Car_BEV_AP40_{d}_strict', 'Car BEV@0.7'),
           ('Car_3D_AP40_{d}_loose', 'Car 3D@0.5'), ('Car_BEV_AP40_{d}_loose', 'Car BEV@0.5'),
           ('Car_2D_AP40_{d}_strict', 'Car 2D@0.7')]
# the learning curves' columns (moderate): 3D@0.5, BEV@0.5, 2D
CURVE_COLUMNS = [COLUMNS[2], COLUMNS[3], COLUMNS[4]]
# Pedestrian and Cyclist, moderate only: KITTI's 2D IoU 0.5 and its loose 3D/BEV IoU 0.25
SMALL_COLUMNS = [(f'{c}_{k}_AP40_{{d}}_{s}', f'{c} {k}@{t}')
                 for c in ('Pedestrian', 'Cyclist')
                 for k, s, t in (('3D', 'loose', '0.25'), ('BEV', 'loose', '0.25'),
                                 ('2D', 'strict', '0.5'))]
PREFIX = 'Kitti metric/pred_instances_3d/KITTI/'
# Everything below this line in the existing report (the hand-written analysis) is kept when
# the report is rewritten.
NOTES_MARKER = '<!-- notes below are kept when run_benchmarks.py rewrites this page -->'
RESULT_FILE = 'result.json'  # each run's figures, next to its checkpoint
CURVE_ANN = 'kitti_infos_val_curve.pkl'  # the fixed val subset of the learning curves


def machine() -> str:
    cpu = 'unknown CPU'
    try:
        cpu = next(line.split(':', 1)[1].strip() for line in open('/proc/cpuinfo')
                   if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    out = f'{cpu}, {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}'
    try:
        import torch
        if torch.cuda.is_available():
            out += f', GPU {torch.cuda.get_device_name(0)}'
    except ImportError:
        pass
    return out


def gpu_available() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


def data_options(data: Path) -> List[str]:
    root = f'{data}/'
    opts = [f'{k}.dataset.data_root={root}' for k in
            ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    opts += [f'val_evaluator.ann_file={root}kitti_infos_val.pkl',
             f'test_evaluator.ann_file={root}kitti_infos_val.pkl']
    return opts


def size_options(config: str, size: Optional[Tuple[int, int]]) -> List[str]:
    """``--cfg-options`` that set every resize / crop transform of ``config``'s pipelines to
    the network input ``size`` (W, H) (the pipelines are lists: items are edited by index)."""
    if size is None:
        return []
    from mmengine.config import Config
    cfg = Config.fromfile(str(REPO / config))
    opts = []
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        for i, t in enumerate(cfg[loader].dataset.pipeline):
            if t['type'] in ('DepthAffineResize', 'AffineResize', 'RandomScaleCrop'):
                opts.append(f'{loader}.dataset.pipeline.{i}.img_scale=({size[0]},{size[1]})')
    return opts


def pinned(cmd: List[str], core: Optional[int]) -> Tuple[List[str], Optional[dict]]:
    """``cmd`` run on one CPU core with one compute thread (``core`` None: unchanged), and
    the environment for it. The affinity is set before ``exec`` so that every thread and data
    worker of the command inherits it. Two single-threaded trainings on two cores do about
    twice the work of one two-threaded training (docs/benchmarks.md, throughput)."""
    if core is None:
        return cmd, None
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    code = (f'import os, sys; os.sched_setaffinity(0, {{{core}}}); '
            'os.execv(sys.argv[1], sys.argv[1:])')
    return [PY, '-c', code, *cmd], env


def run_cmd(cmd: List[str], log: Path, core: Optional[int] = None) -> float:
    """Run ``cmd`` (output appended to ``log``; on CPU ``core`` alone if given), raise with
    the log's end on failure; wall seconds."""
    t0 = time.time()
    cmd, env = pinned(cmd, core)
    with open(log, 'a') as f:
        rc = subprocess.call(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT, env=env)
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


_LOG_TIME = re.compile(r'^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) - mmengine')


def logged_seconds(wdir: Path) -> float:
    """Wall seconds a (possibly interrupted and resumed) training took: the span between
    the first and the last time stamp of each of its mmengine logs, summed. Read from the
    logs, so a run killed half-way still counts what it spent."""
    total = 0.0
    for log in wdir.glob('2*/2*.log'):
        stamps = [m.group(1) for m in map(_LOG_TIME.match, log.read_text().splitlines()) if m]
        if len(stamps) > 1:
            fmt_ = '%Y/%m/%d %H:%M:%S'
            total += (datetime.strptime(stamps[-1], fmt_)
                      - datetime.strptime(stamps[0], fmt_)).total_seconds()
    return total


def read_curve(wdir: Path) -> Dict[int, Dict[str, float]]:
    """Validation metrics logged during training, ``{iteration: {metric: AP}}`` (all log
    folders of a resumed run; a later one wins)."""
    curve = {}
    for f in sorted(wdir.glob('2*/vis_data/scalars.json')):
        for line in f.read_text().splitlines():
            row = json.loads(line)
            if any(k.startswith(PREFIX) for k in row):
                curve[int(row['step'])] = {k: v for k, v in row.items() if k.startswith(PREFIX)}
    return curve


def checkpoint(wdir: Path, iters: int) -> Path:
    """The checkpoint a run's training leaves at its last iteration."""
    return wdir / f'iter_{iters}.pth'


def write_curve_subset(data: Path, frames: int, work: Path) -> Path:
    """A val info file of the first ``frames`` val frames (the learning curves' fixed
    subset), written into the work dir."""
    with open(data / 'kitti_infos_val.pkl', 'rb') as f:
        infos = pickle.load(f)
    infos['data_list'] = infos['data_list'][:frames]
    out = work / CURVE_ANN
    tmp = out.with_suffix('.tmp')
    with open(tmp, 'wb') as f:
        pickle.dump(infos, f)
    os.replace(tmp, out)
    return out


def schedule_options(args, iters: int, seed: int) -> List[str]:
    """Iterations, LR step at 80 %, batch, seed, checkpoints and the curve's validation."""
    every = args.curve_every if args.curve_every else iters + 1
    opts = [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={every}',
            f'default_hooks.checkpoint.interval={min(every, iters)}',
            'default_hooks.checkpoint.max_keep_ckpts=2', f'randomness.seed={seed}',
            # the config's step schedule follows its own max_iters; keep it at 80 % of ours
            f'param_scheduler.1.end={iters}',
            f'param_scheduler.1.milestones=[{max(1, int(0.8 * iters))}]',
            f'train_dataloader.batch_size={args.batch_size}']
    if args.curve_every:
        subset = str(args.work_dir / CURVE_ANN)
        opts += [f'val_dataloader.dataset.ann_file={subset}', f'val_evaluator.ann_file={subset}',
                 # the validation's scalars at the iteration (mmengine's default: the epoch)
                 'default_hooks.logger.log_metric_by_epoch=False']
    return opts


def run_commands(run: Run, args, wdir: Path, seed: int, ckpt: Optional[Path] = None,
                 encoder: Optional[Path] = None):
    """``(train command or None, test command)`` of one run and seed; ``ckpt`` is the
    checkpoint of ``run.train_from`` for a run that trains nothing. A training with a last
    checkpoint in ``wdir`` resumes from it."""
    size = size_options(run.config, args.input_size)
    train = None
    if run.train_from is None:
        opts = data_options(args.data) + schedule_options(args, args.iters, seed) + size
        if encoder is not None:
            opts.append(f'load_from={encoder}')
        train = [PY, 'tools/train.py', run.config, '--work-dir', str(wdir)]
        if (wdir / 'last_checkpoint').exists():
            train.append('--resume')
        train += ['--cfg-options', *opts, *args.cfg_options]
        ckpt = checkpoint(wdir, args.iters)
    test = [PY, 'tools/test.py', run.config, str(ckpt), '--work-dir', str(wdir / 'test'),
            '--cfg-options', *data_options(args.data), *size, *args.cfg_options]
    return train, test


def schedule_key(args) -> dict:
    """What a saved result must match to be reused."""
    return dict(iters=args.iters, batch_size=args.batch_size,
                pretrain_iters=args.pretrain_iters,
                input_size=list(args.input_size) if args.input_size else None)


def train_and_test(run: Run, seed: int, args, ckpts: Dict[Tuple[str, int], Path],
                   encoder: Optional[Path], core: Optional[int] = None) -> dict:
    """Train (unless ``run.train_from``) and test one run with one seed (on CPU ``core``
    alone if given); its figures are saved in ``work/<key>/seed<seed>/result.json``, read
    back instead of running again when the schedule matches."""
    wdir = args.work_dir / run.key / f'seed{seed}'
    wdir.mkdir(parents=True, exist_ok=True)
    saved = wdir / RESULT_FILE
    if saved.exists():
        res = json.loads(saved.read_text())
        if all(res.get(k) == v for k, v in schedule_key(args).items()):
            if run.train_from is None:
                ckpts[run.key, seed] = checkpoint(wdir, args.iters)
            print(f'[bench]   reused {saved}', flush=True)
            return res
    if run.train_from is not None and (run.train_from, seed) not in ckpts:
        raise RuntimeError(f'{run.key}: run {run.train_from} left no checkpoint')
    train_cmd, test_cmd = run_commands(run, args, wdir, seed, ckpts.get((run.train_from, seed)),
                                       encoder)
    cmds = [test_cmd]
    if train_cmd:
        cmds.insert(0, train_cmd)
        run_cmd(train_cmd, wdir / 'train.log', core)
        ckpts[run.key, seed] = checkpoint(wdir, args.iters)
    test_s = run_cmd(test_cmd, wdir / 'test.log', core)
    res = dict(train_s=logged_seconds(wdir), test_s=test_s,
               metrics=read_test_metrics(wdir / 'test'), curve=read_curve(wdir),
               commands=[shlex.join(c) for c in cmds], seed=seed, **schedule_key(args))
    saved.write_text(json.dumps(res, indent=1))
    return res


def bench_jobs(wanted: set, seeds: List[int], seeded: set) -> List[Tuple[Run, int]]:
    """The ``(run, seed)`` pairs of a set, seed by seed: every wanted run with the first seed,
    then the ``seeded`` runs (or those testing their checkpoints) with each further seed, so
    that a set stopped early still holds one whole table."""
    return [(run, seed) for i, seed in enumerate(seeds) for run in RUNS
            if run.key in wanted and (i == 0 or (run.train_from or run.key) in seeded)]


def run_set(jobs: List[Tuple[Run, int]], args, encoder: Optional[Path]):
    """Train and test every ``(run, seed)`` of ``jobs``, ``args.parallel`` at a time, each on
    a CPU core of its own with one thread when more than one runs at once (a run that tests
    another's checkpoint waits for it). Returns ``results[key][seed]`` and the failed runs
    ``{key: first line of the error}``: one failed run must not lose the others' figures."""
    results, ckpts, failed = {}, {}, {}
    cores = queue.Queue()
    for c in sorted(os.sched_getaffinity(0))[:args.parallel]:
        cores.put(c)
    done = {(run.key, seed): threading.Event() for run, seed in jobs}

    def work(job):
        run, seed = job
        try:
            if run.train_from and (run.train_from, seed) in done:
                done[run.train_from, seed].wait()
            core = cores.get()
            try:
                print(f'[bench] {run.title}, seed {seed}', flush=True)
                res = train_and_test(run, seed, args, ckpts, encoder,
                                     core if args.parallel > 1 else None)
                results.setdefault(run.key, {})[seed] = res
            finally:
                cores.put(core)
        except RuntimeError as e:
            print(f'[bench]   FAILED: {run.key} seed {seed}: {e}', flush=True)
            failed[run.key] = str(e).splitlines()[0]
        finally:
            done[run.key, seed].set()

    # runs that train come first, so that one waiting for its source holds no slot early
    with ThreadPoolExecutor(max(1, args.parallel)) as pool:
        list(pool.map(work, sorted(jobs, key=lambda j: j[0].train_from is not None)))
    ordered = {run.key: dict(sorted(results[run.key].items())) for run in RUNS
               if results.get(run.key)}
    return ordered, failed


def pretrain(args) -> Tuple[Optional[Path], Optional[dict]]:
    """The shared 2D pretraining (once per set): trains ``PRETRAIN_CONFIG`` and keeps the
    encoder (backbone + neck) of its last checkpoint as ``encoder.pth`` for ``load_from``.
    Returns the encoder's path and the pretraining's figures (None, None when disabled)."""
    if args.pretrain_iters <= 0:
        return None, None
    wdir = args.work_dir / 'pretrain'
    wdir.mkdir(parents=True, exist_ok=True)
    encoder, saved = wdir / 'encoder.pth', wdir / RESULT_FILE
    want = dict(iters=args.pretrain_iters, batch_size=args.batch_size)
    if encoder.exists() and saved.exists():
        res = json.loads(saved.read_text())
        if all(res.get(k) == v for k, v in want.items()):
            print(f'[bench]   reused {encoder}', flush=True)
            return encoder, res
    cmd = [PY, 'tools/train.py', PRETRAIN_CONFIG, '--work-dir', str(wdir)]
    if (wdir / 'last_checkpoint').exists():
        cmd.append('--resume')
    no_curve = argparse.Namespace(**{**vars(args), 'curve_every': 0})
    cmd += ['--cfg-options', *data_options(args.data),
            *schedule_options(no_curve, args.pretrain_iters, 0),
            *size_options(PRETRAIN_CONFIG, args.input_size), *args.cfg_options]
    run_cmd(cmd, wdir / 'train.log')
    extract_encoder(checkpoint(wdir, args.pretrain_iters), encoder)
    res = dict(train_s=logged_seconds(wdir), command=shlex.join(cmd), **want)
    saved.write_text(json.dumps(res, indent=1))
    return encoder, res


def extract_encoder(ckpt: Path, out: Path) -> None:
    """Keep the backbone and neck weights of a checkpoint (what every run shares: SKDHead,
    the teacher and SMOKE's head start fresh)."""
    import torch

    import mmdet3d_skd  # noqa: F401  (checkpoint loading under torch >= 2.6)
    state = torch.load(ckpt, map_location='cpu')['state_dict']
    keep = {k: v for k, v in state.items() if k.startswith(('backbone.', 'neck.'))}
    if not keep:
        raise RuntimeError(f'{ckpt} holds no backbone/neck weights')
    tmp = out.with_suffix('.tmp')
    torch.save({'state_dict': keep, 'meta': {'source': str(ckpt)}}, tmp)
    os.replace(tmp, out)


# ---------------------------------------------------------------------------- speed probes
def build_model(config: str):
    import torch
    from mmengine.config import Config

    import mmdet3d_skd  # noqa: F401
    from mmdet3d.registry import MODELS
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


def spread(values: List[Optional[float]]) -> str:
    """``mean (min-max)`` of the seeds' values, or the value alone for one seed."""
    vals = [v for v in values if v is not None]
    if not vals:
        return '-'
    if len(vals) == 1:
        return fmt(vals[0])
    return f'{fmt(statistics.mean(vals))} ({fmt(min(vals))}-{fmt(max(vals))})'


def car_3d05(res: dict) -> float:
    """Car 3D AP40@0.5, moderate, of one result."""
    return ap(res['metrics'], COLUMNS[2][0], 'moderate') or 0.0


def compare(results: dict, a: str, b: str) -> str:
    """Run a against run b in Car 3D AP40@0.5 moderate: means, ranges, and whether the
    difference exceeds the seeds' spread (the ranges do not overlap)."""
    va = [car_3d05(r) for r in results[a].values()]
    vb = [car_3d05(r) for r in results[b].values()]
    ma, mb = statistics.mean(va), statistics.mean(vb)
    apart = min(va) > max(vb) or min(vb) > max(va)
    verdict = ('the ranges do not overlap: a difference' if apart and len(va) > 1 and len(vb) > 1
               else 'within the seeds\' spread: no difference claimed' if not apart
               else 'one seed only: no difference claimed')
    ratio = f', ratio {ma / mb:.2f}' if mb > 0 else ''
    return (f'run {a} {spread(va)} vs run {b} {spread(vb)} ({len(va)} and {len(vb)} seeds'
            f'{ratio}): {verdict}')


def mean_curves(results: dict) -> Dict[str, Dict[int, Dict[str, List[float]]]]:
    """``{run: {iteration: {column: [value of each seed]}}}`` of the curve columns."""
    out = {}
    for key, seeds in results.items():
        curve = {}
        for res in seeds.values():
            for it, m in res.get('curve', {}).items():
                row = curve.setdefault(int(it), {t: [] for _, t in CURVE_COLUMNS})
                for pattern, title in CURVE_COLUMNS:
                    v = m.get(PREFIX + pattern.format(d='moderate'))
                    if v is not None:
                        row[title].append(float(v))
        if curve:
            out[key] = dict(sorted(curve.items()))
    return out


def plot_curves(curves: dict, png: Path, names: Optional[Dict[str, str]] = None) -> None:
    """Mean and seed range of each curve column against iterations, one panel a column;
    ``names``: the legend of each curve (default: the run titles)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(CURVE_COLUMNS), figsize=(5 * len(CURVE_COLUMNS), 3.6))
    for ax, (_, title) in zip(axes, CURVE_COLUMNS):
        for key, curve in curves.items():
            its = [it for it, row in curve.items() if row[title]]
            vals = [curve[it][title] for it in its]
            name = (names or {}).get(key) or RUN_BY_KEY[key].title.split(' (')[0]
            line, = ax.plot(its, [statistics.mean(v) for v in vals], marker='o', ms=3,
                            label=name)
            ax.fill_between(its, [min(v) for v in vals], [max(v) for v in vals],
                            color=line.get_color(), alpha=0.2)
        ax.set_title(f'{title}, moderate (AP40 %)')
        ax.set_xlabel('iteration')
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=90)
    plt.close(fig)


def write_report(path: Path, results: dict, speed: dict, args, wall: float,
                 failed: Optional[Dict[str, str]] = None,
                 pretrained: Optional[dict] = None) -> None:
    """``results``: ``{run key: {seed: result}}``."""
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=REPO,
                            capture_output=True, text=True).stdout.strip()
    size = 'the configs\' input size' if not getattr(args, 'input_size', None) else \
        f'input {args.input_size[0]}x{args.input_size[1]}'
    command = shlex.join(['python', 'tools/benchmarks/run_benchmarks.py'] + sys.argv[1:])
    lines = ['# Benchmarks', '',
             'Reproduce with `make bench` (the command below; it goes on where an interrupted '
             'set stopped).', '',
             f'Written by `{command}`'
             f' at commit `{commit}` on {machine()}; total wall time of this invocation '
             f'{wall / 60:.1f} min.', '',
             f'Data: `{os.path.relpath(args.data, REPO)}` (embedded synthetic KITTI-format set, '
             'see docs/synthetic_data.md); schedule: '
             f'{args.iters} iterations, batch {args.batch_size}, {size}, for every run; seeds '
             f'{getattr(args, "seeds", "0")} for runs {getattr(args, "seed_runs", "-")}, the first '
             'seed for the others.', '']
    if getattr(args, 'parallel', 1) > 1:
        lines += [f'{args.parallel} runs at a time, each on a CPU core of its own with one '
                  'thread (train minutes are per run).', '']
    if pretrained:
        lines += [f'Shared 2D pretraining of the encoder (paid once for the set, every run '
                  f'starts from it): {pretrained["iters"]} iterations of '
                  f'`{PRETRAIN_CONFIG}`, {pretrained["train_s"] / 60:.1f} min.', '']
    if args.quick:
        lines += ['**Quick mode: a few iterations on a tiny data set, to prove the path works. '
                  'These figures mean nothing.**', '']
    lines += ['## Accuracy (KITTI AP40 in percent on the val split, Car; '
              'easy / moderate / hard; mean over seeds, (min-max) where several)', '',
              '| run | seeds | ' + ' | '.join(t for _, t in COLUMNS) + ' | train (min) |',
              '|---|---|' + '---|' * (len(COLUMNS) + 1)]
    failed = failed or {}
    for run in RUNS:
        if run.key in failed:
            lines.append(f'| {run.title} | | failed: `{failed[run.key][:200]}` |'
                         + ' |' * len(COLUMNS))
        if run.key not in results:
            continue
        seeds = results[run.key]
        cells = [' / '.join(spread([ap(r['metrics'], p, d) for r in seeds.values()])
                            for d in ('easy', 'moderate', 'hard')) for p, _ in COLUMNS]
        train_min = statistics.mean(r['train_s'] for r in seeds.values()) / 60
        lines.append(f'| {run.title} | {len(seeds)} | ' + ' | '.join(cells)
                     + f' | {train_min:.1f} |')
    lines += ['']
    for a, b, target in (('skd', 'full', 'target >= 0.8'), ('skd', 'student',
                                                            'target: run 1 clearly above')):
        if a in results and b in results:
            lines += [f'- Car 3D AP40@0.5 moderate, {compare(results, a, b)} ({target}).']
    lines += ['']
    multi = {k: v for k, v in results.items() if len(v) > 1}
    if multi:
        lines += ['Each seed (Car moderate, 3D@0.5 / BEV@0.5 / 2D@0.7):', '',
                  '| run | ' + ' | '.join(f'seed {s}' for s in next(iter(multi.values())))
                  + ' |', '|---|' + '---|' * len(next(iter(multi.values())))]
        for key, seeds in multi.items():
            lines.append(f'| {RUN_BY_KEY[key].title} | ' + ' | '.join(
                ' / '.join(fmt(ap(r['metrics'], p, 'moderate')) for p, _ in CURVE_COLUMNS)
                for r in seeds.values()) + ' |')
        lines += ['']
    curves = mean_curves(results)
    if curves:
        png = path.parent / 'images' / 'benchmark_curves.png'
        plot_curves(curves, png)
        lines += ['## Learning curves', '',
                  f'Validation every {args.curve_every} iterations on the first '
                  f'{args.curve_frames} val frames (a fixed subset; the tables above use all of '
                  'val), Car moderate AP40 %, mean over seeds (min-max).', '',
                  f'![learning curves]({os.path.relpath(png, path.parent)})', '',
                  '| run | iteration | ' + ' | '.join(t for _, t in CURVE_COLUMNS) + ' |',
                  '|---|---|' + '---|' * len(CURVE_COLUMNS)]
        for key, curve in curves.items():
            for it, row in curve.items():
                lines.append(f'| {RUN_BY_KEY[key].title.split(" (")[0]} | {it} | '
                             + ' | '.join(spread(row[t]) for _, t in CURVE_COLUMNS) + ' |')
        lines += ['']
    if results:
        lines += ['Pedestrian and Cyclist (moderate; KITTI AP40 in percent, mean over seeds):',
                  '', '| run | ' + ' | '.join(t for _, t in SMALL_COLUMNS) + ' |',
                  '|---|' + '---|' * len(SMALL_COLUMNS)]
        for run in RUNS:
            if run.key in results:
                seeds = results[run.key].values()
                lines.append(f'| {run.title} | ' + ' | '.join(
                    fmt(statistics.mean(ap(r['metrics'], p, 'moderate') or 0.0 for r in seeds))
                    for p, _ in SMALL_COLUMNS) + ' |')
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
    if pretrained:
        lines += [f'- Shared 2D pretraining ({pretrained["train_s"] / 60:.1f} min):',
                  f'  `{pretrained["command"].replace(str(REPO) + "/", "")}`']
    for run in RUNS:
        for seed, res in results.get(run.key, {}).items():
            lines += [f'- {run.title}, seed {seed} ({res["train_s"] / 60:.1f} min train, '
                      f'{res["test_s"] / 60:.1f} min test):']
            # paths relative to the repository root, so the commands work on any clone
            lines += [f'  `{c.replace(str(REPO) + "/", "")}`' for c in res['commands']]
    notes = ''
    if path.exists() and NOTES_MARKER in path.read_text():
        notes = path.read_text().split(NOTES_MARKER, 1)[1]
    lines += ['', NOTES_MARKER]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('\n'.join(lines) + (notes if notes else '\n'))


def parse_size(text: str) -> Tuple[int, int]:
    w, h = (int(v) for v in text.lower().replace('x', ',').split(','))
    return w, h


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data', type=Path, default=REPO / 'data' / 'synth_kitti')
    p.add_argument('--iters', type=int, default=1000)
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--runs', default=','.join(r.key for r in RUNS))
    p.add_argument('--seeds', default='0,1,2', help='seeds of the --seed-runs')
    p.add_argument('--seed-runs', default='skd,student,full',
                   help='runs trained once per seed; the others use the first seed')
    p.add_argument('--pretrain-iters', type=int, default=1000,
                   help='iterations of the shared 2D pretraining (0: runs start from scratch)')
    p.add_argument('--curve-every', type=int, default=250,
                   help='validate every N iterations for the learning curves (0: never)')
    p.add_argument('--curve-frames', type=int, default=100,
                   help='the first N val frames are the curves\' fixed subset')
    p.add_argument('--input-size', type=parse_size, default=None,
                   help='W,H of the network input for every run (default: the configs\')')
    p.add_argument('--config', action='append', default=[], metavar='RUN=CONFIG',
                   help='train a run from another config (a lever\'s variant), e.g. '
                        'full=configs/benchmarks/levers/full_crop_synth.py')
    p.add_argument('--work-dir', type=Path, default=REPO / 'work_dirs' / 'bench')
    p.add_argument('--out', type=Path, default=REPO / 'docs' / 'benchmarks.md')
    p.add_argument('--quick', action='store_true')
    p.add_argument('--no-speed', action='store_true')
    p.add_argument('--parallel', type=int, default=None,
                   help='runs at once, each on a core of its own with one thread (default: '
                        'one per core on a CPU machine, 1 with a GPU)')
    p.add_argument('--cfg-options', nargs='*', default=[])
    args = p.parse_args(argv)
    if args.parallel is None:
        args.parallel = 1 if gpu_available() else len(os.sched_getaffinity(0))
    if args.quick:
        args.iters, args.batch_size, args.seeds = 2, 2, args.seeds.split(',')[0]
        args.pretrain_iters = min(args.pretrain_iters, 2)
        args.curve_every = min(args.curve_every, 1)
        args.cfg_options += ['train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
                             'test_dataloader.num_workers=0',
                             'train_dataloader.persistent_workers=False',
                             'val_dataloader.persistent_workers=False',
                             'test_dataloader.persistent_workers=False']
    for item in args.config:
        key, config = item.split('=', 1)
        if key not in RUN_BY_KEY or not (REPO / config).exists():
            p.error(f'--config {item}: unknown run {key!r} or no file {config}')
        i = RUNS.index(RUN_BY_KEY[key])
        RUNS[i] = RUN_BY_KEY[key] = Run(key, RUNS[i].title + f' [{config}]', config,
                                        RUNS[i].train_from)
    args.work_dir = args.work_dir.resolve()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    if not (args.data / 'kitti_infos_val.pkl').exists():  # generate the data set when missing
        size = ['--num-train', '16', '--num-val', '8', '--width', '621', '--height', '188'] \
            if args.quick else []
        run_cmd([PY, 'tools/generate_synthetic.py', '--out', str(args.data), '--workers', '2',
                 '--no-progress', *size], args.work_dir / 'generate.log')
    if args.curve_every:
        write_curve_subset(args.data, args.curve_frames, args.work_dir)
    t0 = time.time()
    wanted = set(args.runs.split(','))
    seeds = [int(s) for s in args.seeds.split(',')]
    seeded = set(args.seed_runs.split(','))
    wanted |= {r.train_from for r in RUNS if r.key in wanted and r.train_from}
    encoder, pretrained = None, None
    if any(r.train_from is None for r in RUNS if r.key in wanted):
        print('[bench] shared 2D pretraining', flush=True)
        encoder, pretrained = pretrain(args)
    results, failed = run_set(bench_jobs(wanted, seeds, seeded), args, encoder)
    speed = {}
    if not args.no_speed:
        reps = 3 if args.quick else 30
        print('[bench] speed probes', flush=True)
        speed = dict(inference=inference_probe(reps), train=train_probe(max(2, reps // 3)),
                     mem={k: peak_memory_mib(k, 2 if args.quick else 5)
                          for k in ('skd', 'student')})
    write_report(args.out, results, speed, args, time.time() - t0, failed, pretrained)
    print(f'[bench] wrote {args.out}')
    if failed:
        raise SystemExit(f'[bench] failed runs: {sorted(failed)} (see their logs under '
                         f'{args.work_dir})')


if __name__ == '__main__':
    main()
