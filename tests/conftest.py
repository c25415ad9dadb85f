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


@pytest.fixture(scope='session', autouse=True)
def mmdet3d_scope():
    """Build transforms and models by name in mmdet3d's scope, as mmdet3d's runner does."""
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
