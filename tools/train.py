"""Train a detector: mmdet3d's own ``tools/train.py`` with mmdet3d_skd registered.

Same arguments as mmdet3d's script (and as ``mim train mmdet3d CONFIG``), e.g.::

    python tools/train.py configs/skd_wm3d_synth.py --work-dir work_dirs/skd
"""
import os.path as osp
import runpy
import sys

import mmdet3d
import mmdet3d_skd  # noqa: F401  registers our modules, fixes checkpoint loading

# the repository root, so that a project's config can import its code (custom_imports =
# ['projects.<name>.<package>'], as in mmdet3d's projects/)
REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def main():
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    script = osp.join(osp.dirname(mmdet3d.__file__), '.mim', 'tools', 'train.py')
    runpy.run_path(script, run_name='__main__')


if __name__ == '__main__':
    main()
