"""The data tools killed half-way (SIGKILL): re-running completes the set, every file is
whole, and no temporary file is left behind."""
import glob
import importlib.util
import os
import os.path as osp
import pickle
import re
import signal
import subprocess
import sys
import time

import cv2
import numpy as np

from mmdet3d_skd.datasets.kitti_format import CALIB_SHAPES, read_calib, read_label
from tests.conftest import REPO

GEN_ARGS = ['--num-train', '30', '--num-val', '4', '--seed', '5', '--width', '96',
            '--height', '32', '--no-progress']
TMP_PATTERN = '.*.tmp'  # atomic writes: a hidden ".<name>.<random>.tmp" beside the target


def _env():
    env = dict(os.environ)
    env['PYTHONPATH'] = str(REPO) + os.pathsep + env.get('PYTHONPATH', '')
    return env


def run_tool_in_process(args, capsys):
    """``python tools/x.py ARGS`` run in this process (saves an interpreter start): its
    ``main(argv)``'s result and stdout."""
    spec = importlib.util.spec_from_file_location(
        osp.splitext(osp.basename(args[0]))[0], str(REPO / args[0]))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    capsys.readouterr()
    result = tool.main(args[1:])
    return result, capsys.readouterr().out


def kill_when(args, ready, timeout=300):
    """Start ``args``; SIGKILL it as soon as ``ready()`` holds. Returns whether it was still
    running (False: it finished first, the interruption did not happen)."""
    proc = subprocess.Popen([sys.executable, *args], cwd=REPO, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    try:
        while not ready():
            if proc.poll() is not None:
                return False
            if time.monotonic() - t0 > timeout:
                raise AssertionError('the tool made no progress: ' + proc.stderr.read()[-2000:])
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def temporaries(root):
    return sorted(glob.glob(osp.join(str(root), '**', TMP_PATTERN), recursive=True))


# ------------------------------------------------------------------------ generator
def check_synthetic_set(root, num_frames, w=96, h=32):
    """Every frame's five files are whole; the info files list every frame."""
    t = osp.join(root, 'training')
    for i in range(num_frames):
        name = f'{i:06d}'
        img = cv2.imread(osp.join(t, 'image_2', name + '.png'), cv2.IMREAD_UNCHANGED)
        assert img is not None and img.shape == (h, w, 3) and img.dtype == np.uint8, name
        dep = cv2.imread(osp.join(t, 'depth_2', name + '.png'), cv2.IMREAD_UNCHANGED)
        assert dep is not None and dep.shape == (h, w) and dep.dtype == np.uint16, name
        read_label(osp.join(t, 'label_2', name + '.txt'))
        read_calib(osp.join(t, 'calib', name + '.txt'), required=CALIB_SHAPES)
        with open(osp.join(t, 'synth_meta', name + '.json')) as f:
            assert f.read().endswith('}'), name
    for split, n in (('train', 30), ('val', 4), ('trainval', 34)):
        with open(osp.join(root, f'kitti_infos_{split}.pkl'), 'rb') as f:
            assert len(pickle.load(f)['data_list']) == n


def test_generator_killed_half_way_completes_on_rerun(tmp_path, capsys):
    out = tmp_path / 'synth'
    meta = out / 'training' / 'synth_meta'
    args = ['tools/generate_synthetic.py', '--out', str(out), *GEN_ARGS]
    interrupted = kill_when(args, lambda: len(glob.glob(str(meta / '*.json'))) >= 2)
    assert interrupted, 'the generator finished before it could be killed'
    done = len(glob.glob(str(meta / '*.json')))
    assert 2 <= done < 34 and not (out / 'kitti_infos_train.pkl').exists()
    left_by_kill = set(temporaries(out))
    # nothing under a final name is half-written: every file present decodes / parses
    for png in glob.glob(str(out / 'training' / '*' / '*.png')):
        assert cv2.imread(png, cv2.IMREAD_UNCHANGED) is not None, png
    for txt in glob.glob(str(out / 'training' / 'label_2' / '*.txt')):
        read_label(txt)

    rc, stdout = run_tool_in_process(args, capsys)
    assert rc == 0
    m = re.search(r'(\d+) frames written, (\d+) already there', stdout)
    written, skipped = int(m[1]), int(m[2])
    assert skipped >= done and written + skipped == 34
    check_synthetic_set(str(out), 34)
    # the re-run adds no temporary of its own (a kill landing inside a write may leave one:
    # see test_generator_rerun_removes_temporaries_of_a_killed_write)
    assert set(temporaries(out)) <= left_by_kill


def test_generator_rerun_removes_temporaries_of_a_killed_write(tmp_path):
    """What a kill inside ``atomic_write_bytes`` leaves: the hidden temporary, no target."""
    from mmdet3d_skd.offline.synthetic import generate
    out = tmp_path / 'synth'
    generate(str(out), num_train=1, num_val=1, seed=5, width=96, height=32, progress=False)
    stale = out / 'training' / 'image_2' / '.000001.png.k1ll3d.tmp'
    stale.write_bytes(b'\x89PNG\r\n\x1a\n half')
    (out / 'training' / 'image_2' / '000001.png').unlink()
    generate(str(out), num_train=1, num_val=1, seed=5, width=96, height=32, progress=False)
    assert cv2.imread(str(out / 'training' / 'image_2' / '000001.png')) is not None
    assert temporaries(out) == []


# ---------------------------------------------------------------------- depth tool
ESTIMATOR = '''
import time
import numpy as np

def estimate(image_rgb, cam2img):
    """A slow, deterministic stand-in: 2 m + the image's mean grey / 16, per row offset."""
    time.sleep(0.05)
    h, w = image_rgb.shape[:2]
    base = 2.0 + image_rgb.mean() / 16.0
    return base + np.arange(h, dtype=np.float64)[:, None].repeat(w, 1) * 0.25
'''


def expected_depth(img_path):
    rgb = cv2.imread(img_path, cv2.IMREAD_COLOR)[..., ::-1]
    h, w = rgb.shape[:2]
    d = 2.0 + rgb.mean() / 16.0 + np.arange(h, dtype=np.float64)[:, None].repeat(w, 1) * 0.25
    return np.round(d * 256).astype(np.uint16)


def make_kitti_images(root, n=40, w=48, h=16):
    img_dir = root / 'training' / 'image_2'
    cal_dir = root / 'training' / 'calib'
    img_dir.mkdir(parents=True)
    cal_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    p2 = 'P2: 50 0 24 0 0 50 8 0 0 0 1 0\n'
    for i in range(n):
        cv2.imwrite(str(img_dir / f'{i:06d}.png'),
                    rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        (cal_dir / f'{i:06d}.txt').write_text(p2)
    return img_dir


def test_depth_tool_killed_half_way_completes_on_rerun(tmp_path, capsys):
    root = tmp_path / 'kitti'
    img_dir = make_kitti_images(root)
    est = tmp_path / 'slow_estimator.py'
    est.write_text(ESTIMATOR)
    dep_dir = root / 'training' / 'depth_2'
    args = ['tools/generate_depth.py', '--root', str(root), '--estimator', f'{est}:estimate',
            '--no-progress']
    interrupted = kill_when(args, lambda: len(glob.glob(str(dep_dir / '*.png'))) >= 3)
    assert interrupted, 'the depth tool finished before it could be killed'
    done = sorted(glob.glob(str(dep_dir / '*.png')))
    assert 3 <= len(done) < 40
    for png in done:  # nothing under a final name is half-written
        assert cv2.imread(png, cv2.IMREAD_UNCHANGED) is not None, png
    # what a kill inside a write leaves: a hidden temporary and no target
    (dep_dir / '.000039.png.k1ll3d.tmp').write_bytes(b'\x89PNG\r\n\x1a\n half')

    stats, stdout = run_tool_in_process(args, capsys)
    assert (stats.written, stats.skipped) == (40 - len(done), len(done))
    assert f'{40 - len(done)} depth map(s) written, {len(done)} existing skipped' in stdout
    for i in range(40):
        name = f'{i:06d}.png'
        got = cv2.imread(str(dep_dir / name), cv2.IMREAD_UNCHANGED)
        assert got is not None and got.dtype == np.uint16, name
        np.testing.assert_array_equal(got, expected_depth(str(img_dir / name)), err_msg=name)
    assert temporaries(root) == []
