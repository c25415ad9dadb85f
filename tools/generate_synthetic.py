"""Generate the embedded synthetic KITTI-format data set (exact 3D truth, no download).

Example (the defaults: 3000 train + 500 val frames at KITTI's 1242x375)::

    python tools/generate_synthetic.py --out data/synth_kitti --workers 2

Re-running with the same arguments completes a partial set (an interrupted run leaves no
half-written file); different arguments on an existing world are refused unless
``--overwrite``. See docs/synthetic_data.md.
"""
import argparse
import sys
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', default='data/synth_kitti', help='output folder (KITTI layout)')
    p.add_argument('--num-train', type=int, default=3000, help='training frames')
    p.add_argument('--num-val', type=int, default=500, help='validation frames')
    p.add_argument('--seed', type=int, default=0, help='world seed (frames are '
                   'deterministic in (seed, frame index, parameters))')
    p.add_argument('--width', type=int, default=1242, help='image width (P2 is scaled)')
    p.add_argument('--height', type=int, default=375, help='image height (P2 is scaled)')
    p.add_argument('--exact-depth', action='store_true',
                   help='write the exact depth in depth_2 instead of the estimator-like one')
    p.add_argument('--overwrite', action='store_true',
                   help='replace a different world already in --out')
    p.add_argument('--workers', type=int, default=1, help='processes (1: this process)')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmdet3d_skd.offline.synthetic import WorldMismatchError, generate
    t0 = time.time()
    try:
        summary = generate(args.out, num_train=args.num_train, num_val=args.num_val,
                           seed=args.seed, width=args.width, height=args.height,
                           exact_depth=args.exact_depth, overwrite=args.overwrite,
                           workers=args.workers, progress=not args.no_progress)
    except (WorldMismatchError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    dt = time.time() - t0
    print(f'{summary["out_dir"]}: {summary["written"]} frames written, '
          f'{summary["skipped"]} already there, {dt:.1f} s; info files: '
          + ', '.join(summary['infos'].values()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
