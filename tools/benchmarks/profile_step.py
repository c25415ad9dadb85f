"""Time one training step (forward, backward, Adam) of a config's model on a synthetic batch,
with the encoder width, input size, thread count and memory format as options: the compute
side of the throughput lever, without data loading (docs/benchmarks.md)::

    python tools/benchmarks/profile_step.py configs/benchmarks/student_only_synth.py
    python tools/benchmarks/profile_step.py CONFIG --base-channels 32 --size 640,192
    python tools/benchmarks/profile_step.py CONFIG --threads 1 --channels-last

Prints the median of ``--reps`` steps after one warm-up step.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_benchmarks as rb  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument('--size', type=rb.parse_size, default=(384, 128), help='W,H')
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--base-channels', type=int, default=None,
                   help='ResNet width (64: ResNet-18; the neck follows)')
    p.add_argument('--threads', type=int, default=None)
    p.add_argument('--channels-last', action='store_true')
    p.add_argument('--reps', type=int, default=5)
    args = p.parse_args(argv)
    import torch
    from mmengine.config import Config

    import mmdet3d_skd  # noqa: F401
    from mmdet3d.registry import MODELS
    from mmdet3d.utils import register_all_modules
    register_all_modules()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = Config.fromfile(args.config)
    if args.base_channels:
        b = args.base_channels
        cfg.model.backbone.base_channels = b
        cfg.model.neck.in_channels = [b, 2 * b, 4 * b, 8 * b]
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.train()
    inputs, samples = rb.probe_batch(args.batch_size, hw=(args.size[1], args.size[0]))
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        inputs['imgs'] = inputs['imgs'].contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    times = []
    for _ in range(args.reps + 1):
        t0 = time.perf_counter()
        losses = model.loss(inputs, samples)
        opt.zero_grad()
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    print(f'{args.config}: {statistics.median(times[1:]):.3f} s per step (median of '
          f'{args.reps}), batch {args.batch_size} at {args.size[0]}x{args.size[1]}, '
          f'{torch.get_num_threads()} threads, base channels '
          f'{args.base_channels or 64}{", channels_last" if args.channels_last else ""}')


if __name__ == '__main__':
    main()
