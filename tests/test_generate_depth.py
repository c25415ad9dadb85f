"""tools/generate_depth.py and mmdet3d_skd.offline.depth_estimators: KITTI depth PNGs from a local
transformers model (tiny, randomly initialised, built here) or a user's callable."""
import glob
import importlib.util
import math
import os
import os.path as osp
import sys

import cv2
import numpy as np
import pytest
import torch

from mmdet3d_skd.datasets.kitti_format import encode_depth_png, read_intrinsics
from mmdet3d_skd.offline.depth_estimators import (HFDepthEstimator, ground_scale, to_depth,
                                                  write_depth_png)

H, W = 96, 320
F = 160.0
K = np.array([[F, 0, W / 2, 0], [0, F, H / 2, 0], [0, 0, 1, 0]])

ESTIMATORS = '''
import numpy as np
CALLS = []

def ground_depth(cam2img, h, w, cam_height=1.65):
    """Flat ground ``cam_height`` below the camera, a wall at 12 m, nothing above the horizon."""
    P = np.asarray(cam2img, dtype=float)
    v, u = np.mgrid[0:h, 0:w].astype(float)
    dv = v - P[1, 2]
    z = np.where(dv > 0.5, cam_height * P[1, 1] / np.maximum(dv, 1e-9), 0.0)
    z[z > 60] = 0.0
    wall = (u > 100) & (u < 150) & (dv > -20) & (dv < cam_height * P[1, 1] / 12)
    z[wall] = 12.0
    return z

def ground_x2(image, cam2img):
    CALLS.append(cam2img)
    return 2.0 * ground_depth(cam2img, *image.shape[:2])

def const(image, cam2img):
    CALLS.append(image.shape)
    return np.full(image.shape[:2], 7.5, dtype=np.float32)

def disparity(image, cam2img):
    d = np.full(image.shape[:2], 0.25)
    d[:, :10] = 0.0          # no disparity -> invalid
    d[0, 10] = np.nan
    return d

def wrong_shape(image, cam2img):
    return np.zeros((3, 3))

def interrupt_second(image, cam2img):
    CALLS.append(1)
    if len(CALLS) == 2:
        raise KeyboardInterrupt
    return np.full(image.shape[:2], 3.0)
'''


def _tool():
    spec = importlib.util.spec_from_file_location(
        'generate_depth', osp.join(osp.dirname(__file__), '..', 'tools', 'generate_depth.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_tool(*argv):
    return _tool().main(['--no-progress', *map(str, argv)])


def tool_error(*argv) -> str:
    with pytest.raises(SystemExit) as e:
        run_tool(*argv)
    return str(e.value.code)


@pytest.fixture
def est(tmp_path, monkeypatch):
    """The estimator module ``skd_test_estimators`` importable from tmp_path."""
    d = tmp_path / 'est_pkg'
    d.mkdir()
    (d / 'skd_test_estimators.py').write_text(ESTIMATORS)
    monkeypatch.syspath_prepend(str(d))
    sys.modules.pop('skd_test_estimators', None)
    import skd_test_estimators
    yield skd_test_estimators
    sys.modules.pop('skd_test_estimators', None)


def make_kitti(root, names=('000000', '000001'), splits=('training', ), calib=True):
    rng = np.random.default_rng(0)
    for split in splits:
        os.makedirs(root / split / 'image_2', exist_ok=True)
        if calib:
            os.makedirs(root / split / 'calib', exist_ok=True)
        for n in names:
            cv2.imwrite(str(root / split / 'image_2' / f'{n}.png'),
                        rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
            if calib:
                P = ' '.join(f'{v:.6e}' for v in K.ravel())
                eye = '1 0 0 0 1 0 0 0 1'
                (root / split / 'calib' / f'{n}.txt').write_text(
                    f'P0: {P}\nP1: {P}\nP2: {P}\nP3: {P}\nR0_rect: {eye}\n'
                    f'Tr_velo_to_cam: {P}\nTr_imu_to_velo: {P}\n')
    return root


def read_png(path):
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img


def no_temporaries(folder):
    return not glob.glob(osp.join(str(folder), '.*'))


# ----------------------------------------------------------------------- transformers models
def _save(model, processor, folder):
    model.save_pretrained(str(folder))
    processor.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope='module')
def hf_models(tmp_path_factory):
    """Two tiny randomly initialised models saved like a downloaded one: Depth Anything
    (metric, 80 m max; its last conv set to output logit(0.25) -> 20 m everywhere) and DPT
    (relative inverse depth; last conv set to 0.5 everywhere)."""
    transformers = pytest.importorskip('transformers')
    from transformers import DPTImageProcessor
    root = tmp_path_factory.mktemp('hf')
    torch.manual_seed(0)
    bb = transformers.Dinov2Config(hidden_size=16, num_hidden_layers=4, num_attention_heads=2,
                                   intermediate_size=32, image_size=28, patch_size=14,
                                   out_indices=[1, 2, 3, 4], reshape_hidden_states=False)
    da = transformers.DepthAnythingForDepthEstimation(transformers.DepthAnythingConfig(
        backbone_config=bb, patch_size=14, reassemble_hidden_size=16,
        neck_hidden_sizes=(8, 8, 8, 8), fusion_hidden_size=8, head_hidden_size=4,
        depth_estimation_type='metric', max_depth=80))
    with torch.no_grad():
        da.head.conv3.weight.zero_()
        da.head.conv3.bias.fill_(math.log(0.25 / 0.75))
    _save(da, DPTImageProcessor(size={'height': 28, 'width': 28}, keep_aspect_ratio=True,
                                ensure_multiple_of=14), root / 'da_metric')
    dpt = transformers.DPTForDepthEstimation(transformers.DPTConfig(
        hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32,
        image_size=32, patch_size=16, backbone_out_indices=(0, 1, 2, 3),
        neck_hidden_sizes=(8, 8, 8, 8), fusion_hidden_size=8, use_auxiliary_head=False))
    with torch.no_grad():
        dpt.head.head[4].weight.zero_()
        dpt.head.head[4].bias.fill_(0.5)
    _save(dpt, DPTImageProcessor(size={'height': 32, 'width': 32}, keep_aspect_ratio=False),
          root / 'dpt_relative')
    return root


def test_metric_model_from_a_local_folder_writes_kitti_pngs(hf_models, tmp_path):
    root = make_kitti(tmp_path / 'kitti', splits=('training', 'testing'))
    est = HFDepthEstimator(str(hf_models / 'da_metric'))
    assert (est.output_type, est.metric) == ('depth', True)
    stats = run_tool('--root', root, '--model', hf_models / 'da_metric')
    assert stats.written == 4 and stats.skipped == 0
    for split in ('training', 'testing'):
        for n in ('000000', '000001'):
            d = read_png(root / split / 'depth_2' / f'{n}.png')
            assert d.dtype == np.uint16 and d.shape == (H, W)
            assert (d == 20 * 256).all()  # 20 m, no scaling (metric model, auto -> none)
        assert no_temporaries(root / split / 'depth_2')


def test_relative_dpt_is_inverted_and_scaled(hf_models, tmp_path):
    root = make_kitti(tmp_path / 'kitti', names=('000003', ))
    assert HFDepthEstimator(str(hf_models / 'dpt_relative')).output_type == 'disparity'
    run_tool('--root', root, '--model', hf_models / 'dpt_relative', '--scale-mode', 'fixed',
             '--scale', 3)
    d = read_png(root / 'training' / 'depth_2' / '000003.png')
    assert (d == round(3 * (1 / 0.5) * 256)).all()  # disparity 0.5 -> 2 m, times 3


def test_model_folder_errors(hf_models, tmp_path):
    root = make_kitti(tmp_path / 'kitti')
    msg = tool_error('--root', root, '--model', tmp_path / 'nowhere')
    assert str(tmp_path / 'nowhere') in msg and 'no such folder' in msg and 'hf download' in msg
    empty = tmp_path / 'empty'
    empty.mkdir()
    msg = tool_error('--root', root, '--model', empty)
    assert 'no config.json' in msg and str(empty) in msg
    broken = tmp_path / 'broken'
    broken.mkdir()
    (broken / 'config.json').write_text('{"model_type": "dpt", ')
    msg = tool_error('--root', root, '--model', broken)
    assert 'cannot load a depth-estimation model' in msg and str(broken) in msg
    assert not (root / 'training' / 'depth_2').exists() or \
        not os.listdir(root / 'training' / 'depth_2')


# ----------------------------------------------------------------------- callables, scale
def test_ground_scale_recovers_a_doubled_flat_ground(est, tmp_path):
    root = make_kitti(tmp_path / 'kitti')
    stats = run_tool('--root', root, '--estimator', 'skd_test_estimators:ground_x2',
                     '--scale-mode', 'ground')
    assert stats.written == 2 and not stats.ground_fallback
    np.testing.assert_allclose(stats.scales, 0.5, rtol=2e-3)
    # the estimator got each image's P2 from its calib file
    np.testing.assert_allclose(est.CALLS[0], K)
    truth = est.ground_depth(K, H, W)
    got = read_png(root / 'training' / 'depth_2' / '000000.png') / 256.0
    valid = truth > 0
    assert ((got > 0) == valid).all()
    np.testing.assert_allclose(got[valid], truth[valid], rtol=3e-3, atol=1 / 256)


def test_ground_scale_function():
    spec = {}
    exec(ESTIMATORS, spec)
    truth = spec['ground_depth'](K, H, W)
    for s in (0.01, 7.0):
        assert ground_scale(truth * s, K) == pytest.approx(1 / s, rel=2e-3)
    # a camera 1.2 m high, told so
    low = spec['ground_depth'](K, H, W, cam_height=1.2)
    assert ground_scale(low * 3, K, camera_height=1.2) == pytest.approx(1 / 3, rel=2e-3)
    # no ground below the horizon: no scale
    assert ground_scale(np.zeros((H, W)), K) is None


def test_disparity_and_invalid_values(est, tmp_path):
    root = make_kitti(tmp_path / 'kitti', names=('000000', ))
    run_tool('--root', root, '--estimator', 'skd_test_estimators:disparity', '--output-type',
             'disparity')
    d = read_png(root / 'training' / 'depth_2' / '000000.png')
    assert (d[:, :10] == 0).all() and d[0, 10] == 0
    rest = np.ones_like(d, dtype=bool)
    rest[:, :10] = False
    rest[0, 10] = False
    assert (d[rest] == 4 * 256).all()


def test_encode_and_to_depth():
    d = np.array([[0.0, -1.0, np.nan, np.inf], [1.5, 255.99, 300.0, 1e-4]])
    assert encode_depth_png(d).tolist() == [[0, 0, 0, 0], [384, 65533, 0, 1]]
    assert to_depth(np.array([[0.0, 2.0, -1.0]]), 'disparity').tolist() == [[0.0, 0.5, 0.0]]
    with pytest.raises(ValueError, match='shape'):
        to_depth(np.zeros(3))


# ----------------------------------------------------------------------- resume, interruption
def test_resume_skips_existing_and_overwrite_redoes(est, tmp_path):
    root = make_kitti(tmp_path / 'kitti', names=('000000', '000001', '000002'))
    out = root / 'training' / 'depth_2'
    out.mkdir()
    stale = out / '.000001.png.abcd.tmp'  # left by a killed run
    stale.write_bytes(b'half')
    cv2.imwrite(str(out / '000001.png'), np.full((H, W), 99, np.uint16))
    stats = run_tool('--root', root, '--estimator', 'skd_test_estimators:const')
    assert (stats.written, stats.skipped) == (2, 1) and len(est.CALLS) == 2
    assert (read_png(out / '000001.png') == 99).all()  # kept
    assert (read_png(out / '000000.png') == 7.5 * 256).all()
    assert no_temporaries(out)
    stats = run_tool('--root', root, '--estimator', 'skd_test_estimators:const')
    assert (stats.written, stats.skipped) == (0, 3) and len(est.CALLS) == 2
    stats = run_tool('--root', root, '--estimator', 'skd_test_estimators:const', '--overwrite')
    assert stats.written == 3 and len(est.CALLS) == 5
    assert (read_png(out / '000001.png') == 7.5 * 256).all()


def test_interruption_leaves_no_partial_file(est, tmp_path, monkeypatch):
    root = make_kitti(tmp_path / 'kitti', names=('000000', '000001', '000002'))
    out = root / 'training' / 'depth_2'
    with pytest.raises(KeyboardInterrupt):
        run_tool('--root', root, '--estimator', 'skd_test_estimators:interrupt_second')
    assert sorted(os.listdir(out)) == ['000000.png']
    # interrupted while writing: neither the target nor a temporary remains
    real_replace = os.replace

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, 'replace', interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_depth_png(str(out / '000009.png'), np.ones((4, 4)))
    monkeypatch.setattr(os, 'replace', real_replace)
    assert sorted(os.listdir(out)) == ['000000.png']


# ----------------------------------------------------------------------- errors, inputs
def test_user_errors_name_the_file(est, tmp_path):
    assert 'no such folder' in tool_error('--root', tmp_path / 'none', '--estimator',
                                          'skd_test_estimators:const')
    (tmp_path / 'bare').mkdir()
    msg = tool_error('--root', tmp_path / 'bare', '--estimator', 'skd_test_estimators:const')
    assert 'training/image_2' in msg
    root = make_kitti(tmp_path / 'kitti', names=('000000', ))
    assert 'no callable' in tool_error('--root', root, '--estimator',
                                       'skd_test_estimators:nope')
    assert 'cannot import module' in tool_error('--root', root, '--estimator', 'no_such_mod:f')
    assert 'module:function' in tool_error('--root', root, '--estimator', 'nocolon')
    msg = tool_error('--root', root, '--estimator', 'skd_test_estimators:wrong_shape')
    assert '000000.png' in msg and '(3, 3)' in msg
    os.remove(root / 'training' / 'calib' / '000000.txt')
    msg = tool_error('--root', root, '--estimator', 'skd_test_estimators:const')
    assert 'calib' in msg and '000000.txt' in msg
    # ground scale without intrinsics
    imgs = root / 'training' / 'image_2'
    msg = tool_error('--image-dir', imgs, '--out-dir', tmp_path / 'o', '--estimator',
                     'skd_test_estimators:const', '--scale-mode', 'ground')
    assert 'intrinsics' in msg and '000000.png' in msg
    # no ground anywhere
    msg = tool_error('--image-dir', imgs, '--out-dir', tmp_path / 'o', '--intrinsics',
                     _matrix_file(tmp_path, K), '--estimator',
                     'skd_test_estimators:disparity', '--scale-mode', 'ground')
    assert 'no ground plane found' in msg


def _matrix_file(tmp_path, P, name='K.txt'):
    f = tmp_path / name
    f.write_text(' '.join(str(v) for v in np.asarray(P).ravel()))
    return f


def test_image_dir_with_one_intrinsics_file_and_a_file_estimator(tmp_path):
    root = make_kitti(tmp_path / 'kitti', calib=False)
    (tmp_path / 'my_est.py').write_text(ESTIMATORS)
    stats = run_tool('--image-dir', root / 'training' / 'image_2', '--out-dir', tmp_path / 'o',
                     '--intrinsics', _matrix_file(tmp_path, K), '--estimator',
                     f'{tmp_path / "my_est.py"}:ground_x2', '--scale-mode', 'ground')
    assert stats.written == 2
    np.testing.assert_allclose(stats.scales, 0.5, rtol=2e-3)


def test_read_intrinsics(tmp_path):
    P4 = np.eye(4)
    P4[:3] = K
    np.testing.assert_allclose(read_intrinsics(str(_matrix_file(tmp_path, P4))), P4)
    np.testing.assert_allclose(read_intrinsics(str(_matrix_file(tmp_path, K[:, :3]))),
                               K[:, :3])
    make_kitti(tmp_path / 'k', names=('000000', ))
    np.testing.assert_allclose(
        read_intrinsics(str(tmp_path / 'k' / 'training' / 'calib' / '000000.txt')), K)
    with pytest.raises(ValueError, match='10 numbers'):
        read_intrinsics(str(_matrix_file(tmp_path, np.arange(10.0) + 1, 'bad.txt')))
    with pytest.raises(FileNotFoundError, match='missing.txt'):
        read_intrinsics(str(tmp_path / 'missing.txt'))
