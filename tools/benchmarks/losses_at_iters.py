"""Logged training losses of several runs at given iterations, side by side (a markdown table).

Reads every ``vis_data/scalars.json`` under each run's work dir (mmengine's LocalVisBackend;
a resumed run has one per start, later starts win) and averages a loss term over the logged
steps in ``(it - window, it]``::

    python tools/benchmarks/losses_at_iters.py "run 1=work_dirs/bench/skd/seed0" \
        "run 6=work_dirs/bench/full/seed0" --term student.loss_heatmap --iters 250,500,1000

The issue's check that the 2D terms keep learning under the weak losses (heatmap loss within
10 % of run 6's at the same iteration) is this table's last row against its first.
"""
import argparse
import json
import math
from pathlib import Path
from typing import Dict, List


def logged_steps(work_dir: Path) -> Dict[int, dict]:
    """Every logged training step of a run: ``{step: scalars}`` (later starts override)."""
    files = sorted(work_dir.glob('*/vis_data/scalars.json'))
    if not files:
        raise FileNotFoundError(f'{work_dir}: no */vis_data/scalars.json (not an mmengine '
                                'work dir, or nothing logged yet)')
    steps = {}
    for f in files:  # time-stamped folders sort in start order
        for n, line in enumerate(f.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f'{f}, line {n}: not JSON ({e})') from None
            if 'step' in row and 'lr' in row:  # training rows (validation rows carry no lr)
                steps[int(row['step'])] = row
    return steps


def mean_at(steps: Dict[int, dict], term: str, it: int, window: int) -> float:
    """Mean of ``term`` over the logged steps in ``(it - window, it]``; NaN when none."""
    vals = [r[term] for s, r in steps.items() if it - window < s <= it and term in r]
    return sum(vals) / len(vals) if vals else math.nan


def table(runs: List[str], term: str, iters: List[int], window: int) -> str:
    head = f'| {term} | ' + ' | '.join(str(i) for i in iters) + ' |'
    lines = [head, '|---|' + '---|' * len(iters)]
    for item in runs:
        label, _, path = item.rpartition('=')
        steps = logged_steps(Path(path))
        vals = [mean_at(steps, term, i, window) for i in iters]
        lines.append(f'| {label or path} | ' +
                     ' | '.join('-' if math.isnan(v) else f'{v:.3f}' for v in vals) + ' |')
    return '\n'.join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('runs', nargs='+', help='LABEL=WORK_DIR (or WORK_DIR)')
    p.add_argument('--term', default='student.loss_heatmap')
    p.add_argument('--iters', default='250,500,750,1000')
    p.add_argument('--window', type=int, default=100,
                   help='average over the logged steps of the last N iterations')
    args = p.parse_args(argv)
    print(table(args.runs, args.term, [int(i) for i in args.iters.split(',')], args.window))


if __name__ == '__main__':
    main()
