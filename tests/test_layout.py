"""The package layout: the runtime (``import mmdet3d_skd``, what a config's custom_imports
loads) does not load the offline tools or the test fixtures, and nothing under
``mmdet3d_skd/`` but the offline subpackage imports them."""
import re
import subprocess
import sys

from tests.conftest import REPO

OFFLINE_OR_TESTING = ('mmdet3d_skd.offline', 'mmdet3d_skd.testing')


def test_import_mmdet3d_skd_loads_no_offline_tool_nor_fixture():
    code = ('import sys, mmdet3d_skd\n'
            f'print([m for m in sys.modules if m.startswith({OFFLINE_OR_TESTING!r})])')
    out = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == '[]'


def test_only_the_offline_package_imports_the_generator_and_the_depth_tool():
    pattern = re.compile(r'^\s*(from|import)\s+(mmdet3d_skd\.offline|\.+offline)\b|'
                         r'^\s*from\s+\.\.?\s+import\s+offline\b', re.M)
    offenders = [str(p.relative_to(REPO)) for p in (REPO / 'mmdet3d_skd').rglob('*.py')
                 if 'offline' not in p.relative_to(REPO / 'mmdet3d_skd').parts[:1]
                 and pattern.search(p.read_text())]
    assert offenders == []


def test_models_flow_one_way_targets_do_not_import_the_losses():
    """Data -> targets -> head -> losses: the target side (pseudo points, their orientation
    and ground-plane fits, target assignment) imports nothing from the loss modules."""
    losses = re.compile(r'^\s*from\s+\.(weak_losses|distill_loss)\s+import', re.M)
    models = REPO / 'mmdet3d_skd' / 'models'
    offenders = [name for name in ('pseudo_points.py', 'orientation_fit.py', 'ground_plane.py',
                                   'targets.py')
                 if losses.search((models / name).read_text())]
    assert offenders == []
