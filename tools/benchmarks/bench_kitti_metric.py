"""Time CPUKittiMetric against mmdet3d's KittiMetric under numba's CUDA simulator.

Both run on the same fake KITTI val set (``make_fake_kitti_eval_set``), each in a
fresh interpreter: ``CPUKittiMetric`` as is, ``KittiMetric`` with
``NUMBA_ENABLE_CUDASIM=1`` (the only way it runs without CUDA). The rotated-IoU
kernels alone are also timed on the BEV boxes of the first frames. The script
checks that every result agrees (AP to 1e-4, IoU to 1e-5) and writes the figures
into the marked section of ``docs/kitti_metric_cpu.md``.

    python tools/benchmarks/bench_kitti_metric.py --frames 300
"""
import argparse
import os
import platform
import re
import shlex
import sys
import tempfile
import time
from datetime import datetime, timezone

import numba
import numpy as np
from kitti_metric_subprocess import rotate_iou_gpu_eval_cudasim, run_metric_subprocess

from mmdet3d_skd.evaluation.rotate_iou_cpu import rotate_iou_cpu_eval
from mmdet3d_skd.testing.fake_kitti_results import dump_eval_set, make_fake_kitti_eval_set

BEGIN = '<!-- bench_kitti_metric: begin (written by tools/benchmarks/bench_kitti_metric.py) -->'
END = '<!-- bench_kitti_metric: end -->'
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cpu_model() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def write_section(doc: str, text: str) -> None:
    """Replace the marked section of ``doc`` (append it if absent)."""
    section = f'{BEGIN}\n{text.rstrip()}\n{END}'
    old = open(doc).read() if os.path.exists(doc) else ''
    pattern = re.compile(re.escape(BEGIN) + r'.*?' + re.escape(END), re.S)
    if pattern.search(old):
        new = pattern.sub(lambda _: section, old)
    else:
        new = old.rstrip() + ('\n\n' if old else '') + section + '\n'
    with open(doc, 'w') as f:
        f.write(new)


def bev_boxes(infos: dict, samples: list, frames: int):
    """(x, z, l, w, ry) of the GT and of the detections of the first frames,
    as mmdet3d's ``calculate_iou_partly`` builds them for one part."""
    gt = [i['bbox_3d'] for info in infos['data_list'][:frames]
          for i in info['instances'] if i['bbox_label'] != -1]
    dt = [s['pred_instances_3d']['bboxes_3d'].tensor.numpy()
          for s in samples[:frames]]
    gt, dt = np.array(gt), np.concatenate(dt)
    return dt[:, [0, 2, 3, 5, 6]], gt[:, [0, 2, 3, 5, 6]]


def exact_iou(boxes: np.ndarray, query: np.ndarray, pairs) -> np.ndarray:
    """float64 IoU of the given (n, k) pairs with shapely (None if absent), the
    boxes' corners built as the kernel does (clockwise rotation)."""
    try:
        from shapely.geometry import Polygon
    except ImportError:
        return None

    def poly(box):
        cx, cy, dx, dy, a = box.astype(np.float32).astype(np.float64)
        c, s = np.cos(a), np.sin(a)
        local = [(-dx / 2, -dy / 2), (-dx / 2, dy / 2), (dx / 2, dy / 2), (dx / 2, -dy / 2)]
        return Polygon([(c * u + s * v + cx, -s * u + c * v + cy) for u, v in local])

    out = []
    for n, k in pairs:
        p, q = poly(boxes[n]), poly(query[k])
        inter = p.intersection(q).area
        out.append(inter / (p.area + q.area - inter))
    return np.array(out)


def time_iou_kernels(boxes: np.ndarray, query: np.ndarray) -> dict:
    """Seconds of rotate_iou_cpu_eval (after a warm-up call) and of mmdet3d's
    kernel under the simulator; their largest difference, and each one's largest
    deviation from the exact IoU on the overlapping pairs."""
    rotate_iou_cpu_eval(boxes, query)  # compile or load the cache
    tic = time.perf_counter()
    cpu = rotate_iou_cpu_eval(boxes, query)
    t_cpu = time.perf_counter() - tic
    sim, t_sim = rotate_iou_gpu_eval_cudasim(boxes, query, (-1, ))
    sim = sim[-1]
    res = dict(cpu=t_cpu, sim=t_sim[-1], diff=float(np.abs(cpu - sim).max()))
    pairs = np.argwhere((cpu > 0) | (sim > 0))
    exact = exact_iou(boxes, query, pairs)
    if exact is not None:
        res['overlapping'] = len(pairs)
        res['cpu_err'] = float(np.abs(cpu[tuple(pairs.T)] - exact).max())
        res['sim_err'] = float(np.abs(sim[tuple(pairs.T)] - exact).max())
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--frames', type=int, default=300)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--doc', default=os.path.join(REPO, 'docs', 'kitti_metric_cpu.md'))
    parser.add_argument('--iou-frames', type=int, default=30,
                        help='frames whose BEV boxes time the IoU kernels alone')
    parser.add_argument('--no-doc', action='store_true', help='print only')
    args = parser.parse_args()

    infos, samples = make_fake_kitti_eval_set(args.frames, seed=args.seed)
    n_gt = sum(len(i['instances']) for i in infos['data_list'])
    n_dt = sum(len(s['pred_instances_3d']['scores_3d']) for s in samples)
    with tempfile.TemporaryDirectory() as tmp:
        ann_file, samples_file = dump_eval_set(infos, samples, tmp)
        print(f'{args.frames} frames, {n_gt} GT, {n_dt} detections; '
              'running CPUKittiMetric ...', flush=True)
        cpu = run_metric_subprocess('CPUKittiMetric', ann_file, samples_file,
                                    os.path.join(tmp, 'cpu.json'), repeat=2)
        print(f'CPUKittiMetric: {cpu["seconds"]} s; running KittiMetric under '
              'NUMBA_ENABLE_CUDASIM=1 ...', flush=True)
        sim = run_metric_subprocess('KittiMetric', ann_file, samples_file,
                                    os.path.join(tmp, 'sim.json'), cudasim=True)
        print(f'KittiMetric (CUDASIM): {sim["seconds"]} s', flush=True)

    boxes, query = bev_boxes(infos, samples, args.iou_frames)
    print(f'timing the IoU kernels alone on {len(boxes)} x {len(query)} BEV boxes ...',
          flush=True)
    kern = time_iou_kernels(boxes, query)

    ref, ours = sim['metrics'], cpu['metrics']
    if sorted(ref) != sorted(ours):
        raise SystemExit(f'different keys: {sorted(set(ref) ^ set(ours))}')
    diff = max(abs(ref[k] - ours[k]) for k in ref)
    # float32 intersection points of nearly parallel edges are ill-conditioned:
    # both kernels stray up to ~1e-4 from the exact IoU there, in different bits
    if diff > 1e-4 or kern['diff'] > 1e-4:
        raise SystemExit(f'results differ: AP by up to {diff}, IoU by up to '
                         f'{kern["diff"]}')
    t_sim = sim['seconds'][0]
    t_cold, t_warm = cpu['seconds']
    car = [ours[f'Kitti metric/pred_instances_3d/KITTI/Car_3D_AP40_{d}_strict']
           for d in ('easy', 'moderate', 'hard')]
    load = os.getloadavg()[0]
    pairs = len(boxes) * len(query)
    exact_note = '' if 'cpu_err' not in kern else (
        f"\nLargest deviation from the exact IoU (float64, shapely) over the "
        f"{kern['overlapping']} overlapping pairs:\nCPU port {kern['cpu_err']:.1e}, "
        f"simulator {kern['sim_err']:.1e} (float32 intersection points of nearly\n"
        'parallel edges are ill-conditioned in this algorithm).')
    cmd = 'python ' + ' '.join(
        shlex.quote(a) for a in [os.path.relpath(__file__, REPO)] + sys.argv[1:])
    text = f"""\
Measured {datetime.now(timezone.utc):%Y-%m-%d} by `{cmd}`:

| | `metric.evaluate` time |
|---|---|
| `KittiMetric`, `NUMBA_ENABLE_CUDASIM=1` (one run) | {t_sim:.1f} s |
| `CPUKittiMetric`, first run in its process | {t_cold:.1f} s |
| `CPUKittiMetric`, second run | {t_warm:.1f} s |
| speed-up, simulator / first run | {t_sim / t_cold:.0f}x |
| speed-up, simulator / second run | {t_sim / t_warm:.0f}x |

Rotated-IoU kernel alone, {len(boxes)} detections x {len(query)} ground-truth BEV boxes (the
first {args.iou_frames} frames as one part), criterion -1:

| | time | box pairs / s |
|---|---|---|
| `rotate_iou_gpu_eval`, `NUMBA_ENABLE_CUDASIM=1` | {kern['sim']:.2f} s | {pairs / kern['sim']:,.0f} |
| `rotate_iou_cpu_eval` (after a warm-up call) | {kern['cpu'] * 1e3:.1f} ms | {pairs / kern['cpu']:,.0f} |
| speed-up | {kern['sim'] / kern['cpu']:,.0f}x | |

Largest IoU difference between the two: {kern['diff']:.1e}.{exact_note}

- A first run includes numba compiling mmdet3d's own jitted KITTI functions (both metrics)
  and compiling or loading from its cache the CPU IoU kernel.
- data: {args.frames} fake KITTI frames (seed {args.seed}), {n_gt} ground-truth instances
  (DontCare included), {n_dt} 3D detections plus as many 2D ones; 3 classes, metric `bbox`.
- agreement: {len(ref)} result keys, identical key sets, largest difference {diff:.1e}
  (Car 3D AP40 strict easy/moderate/hard: {', '.join(f'{v:.2f}' for v in car)}).
- machine: {cpu_model()}, {usable_cores()} usable cores, load average {load:.1f} at the end;
  Python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__};
  no GPU. Wall-clock times inside the worker processes, imports excluded.
"""
    print(text)
    if not args.no_doc:
        write_section(args.doc, text)
        print(f'updated {args.doc}')


if __name__ == '__main__':
    main()
