"""Learning curves of several training runs in one table and one PNG (a lever's before/after).

Each argument is ``LABEL=WORK_DIR``: a training work dir that validated during training
(``run_benchmarks.py --curve-every N``, or any mmengine run with ``val_interval`` and
``default_hooks.logger.log_metric_by_epoch=False``)::

    python tools/benchmarks/compare_curves.py \\
        "from scratch=work_dirs/lever_scratch/full/seed0" \\
        "2D-pretrained=work_dirs/lever_pre/full/seed0" --out docs/images/lever_curves.png

Prints a markdown table (Car moderate AP40 % per validation) and writes the PNG.
"""
import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_benchmarks as rb  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('runs', nargs='+', metavar='LABEL=WORK_DIR')
    p.add_argument('--out', type=Path, required=True, help='the PNG to write')
    args = p.parse_args(argv)
    curves, labels = {}, []
    for item in args.runs:
        label, wdir = item.split('=', 1)
        curve = rb.read_curve(Path(wdir))
        if not curve:
            raise SystemExit(f'{wdir}: no validation during training found')
        curves[label] = {it: {t: [m[rb.PREFIX + pat.format(d='moderate')]]
                              if rb.PREFIX + pat.format(d='moderate') in m else []
                              for pat, t in rb.CURVE_COLUMNS} for it, m in curve.items()}
        labels.append(label)
    print('| run | iteration | ' + ' | '.join(t for _, t in rb.CURVE_COLUMNS) + ' |')
    print('|---|---|' + '---|' * len(rb.CURVE_COLUMNS))
    for label in labels:
        for it, row in sorted(curves[label].items()):
            print(f'| {label} | {it} | ' + ' | '.join(
                rb.fmt(statistics.mean(row[t]) if row[t] else None) for _, t in
                rb.CURVE_COLUMNS) + ' |')
    rb.plot_curves({label: dict(sorted(c.items())) for label, c in curves.items()}, args.out,
                   names={label: label for label in labels})
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
