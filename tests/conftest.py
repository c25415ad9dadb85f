"""Shared test fixtures: the real KITTI frames of ../shared (skipped where absent)."""
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
KITTI_REAL = REPO.parent / 'shared' / 'data' / 'kitti-real'


@pytest.fixture(scope='session')
def kitti_real() -> Path:
    """The folder of real KITTI frames; the test is skipped, saying why, where it is absent."""
    if not (KITTI_REAL / 'tests' / 'kitti_infos_train.pkl').exists():
        pytest.skip(f'real KITTI frames not found at {KITTI_REAL} (../shared/data/kitti-real '
                    'beside the repository); they are never copied into the repo')
    return KITTI_REAL


def _in_mmdet3d_scope():
    from mmengine.registry import DefaultScope

    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    return DefaultScope.overwrite_default_scope('mmdet3d')


@pytest.fixture(scope='module', autouse=True)
def mmdet3d_scope_module():
    """Module-scoped fixtures (built before function-scoped ones) see mmdet3d's scope too."""
    with _in_mmdet3d_scope():
        yield


@pytest.fixture(autouse=True)
def mmdet3d_scope():
    """Build transforms and models by name in mmdet3d's scope, as mmdet3d's runner does
    (a runner built by another test may have left another default scope current)."""
    with _in_mmdet3d_scope():
        yield


@pytest.fixture(scope='session')
def synth_data(tmp_path_factory) -> Path:
    """A small generated synthetic KITTI-format data set (24 train + 8 val frames, 621x188)."""
    from mmdet3d_skd.offline.synthetic import generate
    out = tmp_path_factory.mktemp('synth') / 'synth_kitti'
    generate(str(out), num_train=24, num_val=8, seed=3, width=621, height=188, progress=False)
    return out


def small_synth_cfg(data_root, work_dir, max_iters=4, batch_size=2, input_size=(192, 64),
                    config='configs/skd_wm3d_synth.py'):
    """``config`` pointed at ``data_root``, sized for tests (small input, few iterations)."""
    from mmengine.config import Config
    cfg = Config.fromfile(str(REPO / config))
    root = str(data_root) + '/'
    cfg.work_dir = str(work_dir)
    # mmengine reuses one visualizer per name: a second in-process runner would log into the
    # first one's folder
    cfg.visualizer.name = f'visualizer_{abs(hash(str(work_dir)))}'
    cfg.experiment_name = f'test_{abs(hash(str(work_dir)))}'
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dl = cfg[name]
        dl.dataset.data_root = root
        dl.num_workers = 0
        dl.persistent_workers = False
        for t in dl.dataset.pipeline:
            if t['type'] in ('DepthAffineResize', 'AffineResize'):
                t['img_scale'] = input_size
    cfg.train_dataloader.batch_size = batch_size
    cfg.val_evaluator.ann_file = root + 'kitti_infos_val.pkl'
    cfg.test_evaluator.ann_file = root + 'kitti_infos_val.pkl'
    cfg.train_cfg.max_iters = max_iters
    cfg.train_cfg.val_interval = max_iters
    cfg.default_hooks.checkpoint.interval = max_iters
    cfg.default_hooks.logger.interval = 1
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
    for hook in cfg.get('custom_hooks', []):
        if hook['type'] == 'GradModulationHook':
            hook['warmup_iters'] = min(hook['warmup_iters'], max(1, max_iters // 4))
    return cfg
