"""How hard does each loss term pull on the shared encoder? Gradient norm per term.

For a few training batches of a config (real data through its training pipeline), computes
each logged loss term's gradient with respect to the shared encoder's parameters (backbone +
neck) alone and prints its L2 norm (mean over the batches) and its share of the sum: the
loss-balance table of docs/benchmarks.md. A term whose norm dwarfs the 2D terms' decides what
the encoder learns; that is how the alignment weight was found to starve 2D detection::

    python tools/benchmarks/grad_norms.py configs/skd_wm3d_synth.py --data data/synth_kitti
    python tools/benchmarks/grad_norms.py CONFIG --checkpoint work_dirs/x/iter_600.pth
    python tools/benchmarks/grad_norms.py CONFIG --cfg-options \
        model.bbox_head.loss_weak3d.align_per_depth=True

No transfer-modulation hook runs here (its coefficients are 1), so the norms are the terms'
own; the weights are the config's.
"""
import argparse
from pathlib import Path
from typing import Dict, List

import torch


def encoder_grad_norms(model, data: dict) -> Dict[str, float]:
    """L2 norm of the gradient of each ``loss`` entry of ``model.loss`` with respect to the
    backbone and neck parameters (one backward pass per term)."""
    params = [p for m in (model.backbone, model.neck) for p in m.parameters()
              if p.requires_grad]
    losses = model.loss(data['inputs'], data['data_samples'])
    norms = {}
    for name, value in losses.items():
        if 'loss' not in name or not value.requires_grad:
            continue
        grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
        sq = sum(float((g.double() ** 2).sum()) for g in grads if g is not None)
        norms[name] = sq ** 0.5
    return norms


def table(rows: List[Dict[str, float]]) -> str:
    """Markdown table of the mean norm of each term over ``rows`` and its share of the sum."""
    names = sorted({k for r in rows for k in r})
    mean = {k: sum(r.get(k, 0.0) for r in rows) / len(rows) for k in names}
    total = sum(mean.values()) or 1.0
    lines = ['| loss term | gradient norm into the encoder | share |', '|---|---|---|']
    for k in sorted(names, key=lambda k: -mean[k]):
        lines.append(f'| {k} | {mean[k]:.3g} | {100 * mean[k] / total:.1f} % |')
    return '\n'.join(lines)


def main(argv=None) -> None:
    from mmengine.config import Config, DictAction
    from mmengine.runner import Runner, load_checkpoint

    import mmdet3d_skd  # noqa: F401
    from mmdet3d.registry import MODELS
    from mmdet3d.utils import register_all_modules
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument('--checkpoint', default=None, help='default: the freshly initialised model')
    p.add_argument('--data', type=Path, default=Path('data/synth_kitti'))
    p.add_argument('--batches', type=int, default=4)
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                   help='override config settings, as in tools/train.py')
    args = p.parse_args(argv)
    register_all_modules()
    torch.manual_seed(args.seed)
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    dl_cfg = cfg.train_dataloader
    dl_cfg.dataset.data_root = f'{args.data}/'
    dl_cfg.num_workers, dl_cfg.persistent_workers = 0, False
    dl_cfg.batch_size = args.batch_size
    model = MODELS.build(cfg.model)
    if args.checkpoint:
        load_checkpoint(model, args.checkpoint, map_location='cpu')
    model.train()
    rows = []
    for i, batch in enumerate(Runner.build_dataloader(dl_cfg, seed=args.seed)):
        if i == args.batches:
            break
        rows.append(encoder_grad_norms(model, model.data_preprocessor(batch, True)))
    print(f'{args.config} ({args.checkpoint or "initialised"}), {len(rows)} batches of '
          f'{args.batch_size}:\n')
    print(table(rows))


if __name__ == '__main__':
    main()
