"""Bad input gets a clear error naming the file or sample, or is masked out of the losses.

Each test drives the real code path (WeakKittiDataset with the synth config's training
pipeline, SKDDataPreprocessor, SKDWM3D.loss, read_calib / read_label, mmengine's checkpoint
loading). Behaviours already proven elsewhere are listed in docs/reliability.md with their
tests and not repeated here.
"""
import copy
import pickle
import struct
import zipfile

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.dataset import pseudo_collate
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.runner.checkpoint import load_checkpoint
from mmengine.structures import InstanceData

import mmdet3d_skd  # noqa: F401  registers modules and the checked checkpoint loader
from mmdet3d.registry import DATASETS, MODELS
from mmdet3d.structures import Det3DDataSample
from mmdet3d_skd.checkpoint import CorruptCheckpointError
from mmdet3d_skd.datasets.kitti_format import read_calib, read_label
from tests.conftest import REPO, small_synth_cfg

# ---------------------------------------------------------------------------------------
# a hand-made KITTI-layout frame (160x48 image) read through the synth training config
# ---------------------------------------------------------------------------------------
IMG_H, IMG_W = 48, 160
P2 = [[120.0, 0.0, 80.0, 9.0], [0.0, 120.0, 20.0, 0.0], [0.0, 0.0, 1.0, 0.003],
      [0.0, 0.0, 0.0, 1.0]]
BOXES = [[40.0, 10.0, 80.0, 40.0], [100.0, 12.0, 110.0, 40.0]]  # Car, Pedestrian


def plausible_depth(h=IMG_H, w=IMG_W):
    """Ground below the horizon (row 20), a car surface at 10 m inside the first box."""
    v = np.arange(h, dtype=np.float32)[:, None].repeat(w, 1)
    depth = np.where(v > 21, 120.0 * 1.65 / np.maximum(v - 20, 1), 0.0).astype(np.float32)
    depth[10:40, 40:80] = 10.0
    depth[12:40, 100:110] = 14.0
    return depth


def write_depth_png(path, depth):
    cv2.imwrite(str(path), np.round(depth * 256).astype(np.uint16))


def make_root(tmp_path, depth=None, depth_name='000000.png', instances=None, write=None):
    """One frame: image, depth map (``write(path)`` or ``depth`` as png/npy), v2 info file."""
    img_dir = tmp_path / 'training' / 'image_2'
    dep_dir = tmp_path / 'training' / 'depth_2'
    img_dir.mkdir(parents=True)
    dep_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    cv2.imwrite(str(img_dir / '000000.png'),
                rng.integers(0, 255, (IMG_H, IMG_W, 3), dtype=np.uint8))
    path = dep_dir / depth_name
    if write is not None:
        write(path)
    elif depth_name.endswith('.npy'):
        np.save(path, plausible_depth() if depth is None else depth)
    else:
        write_depth_png(path, plausible_depth() if depth is None else depth)
    if instances is None:
        instances = [dict(bbox=BOXES[0], bbox_label=2), dict(bbox=BOXES[1], bbox_label=0)]
    info = dict(sample_idx=0, instances=instances,
                images=dict(CAM2=dict(img_path='000000.png', cam2img=P2, height=IMG_H,
                                      width=IMG_W, depth_path=depth_name,
                                      lidar2cam=np.eye(4).tolist())))
    metainfo = dict(dataset='kitti', info_version='1.1',
                    categories={'Pedestrian': 0, 'Cyclist': 1, 'Car': 2, 'Van': 3})
    with open(tmp_path / 'kitti_infos_train.pkl', 'wb') as f:
        pickle.dump(dict(metainfo=metainfo, data_list=[info]), f)
    return tmp_path


def train_dataset(root, **loader_args):
    """WeakKittiDataset with the synth config's training pipeline (small input size)."""
    cfg = small_synth_cfg(root, root / 'work')
    ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    ds_cfg.ann_file = 'kitti_infos_train.pkl'
    ds_cfg.filter_empty_gt = False
    for t in ds_cfg.pipeline:
        if t['type'] == 'LoadDepthMap':
            t.update(loader_args)
    return DATASETS.build(ds_cfg)


# ------------------------------------------------------------------------ depth maps
def test_missing_depth_map_names_file_and_sample(tmp_path):
    root = make_root(tmp_path, write=lambda p: None)
    with pytest.raises(FileNotFoundError) as e:
        train_dataset(root)[0]
    msg = str(e.value)
    assert 'depth_2/000000.png' in msg and 'sample_idx=0' in msg and 'not found' in msg


def _truncated(fmt):
    def write(path):
        buf = path.with_name('full' + path.suffix)
        d = plausible_depth()
        if fmt == 'png':
            write_depth_png(buf, d)
        elif fmt == 'npy':
            np.save(buf, d)
        else:
            np.savez(buf, depth=d)
        data = buf.read_bytes()
        path.write_bytes(data[:len(data) // 2])
        buf.unlink()
    return write


@pytest.mark.parametrize('fmt', ['png', 'npy', 'npz'])
def test_truncated_depth_map_names_file_and_sample(tmp_path, fmt):
    root = make_root(tmp_path, depth_name=f'000000.{fmt}', write=_truncated(fmt))
    with pytest.raises(ValueError) as e:
        train_dataset(root)[0]
    msg = str(e.value)
    assert f'000000.{fmt}' in msg and 'sample_idx=0' in msg and 'truncated' in msg


def test_unreadable_depth_map_names_the_file(tmp_path):
    """A path that exists but cannot be read as a file (here a folder): the OS error, with
    the path, is not swallowed."""
    root = make_root(tmp_path, write=lambda p: p.mkdir())
    with pytest.raises(OSError, match=r'depth_2/000000\.png'):
        train_dataset(root)[0]


def test_depth_map_of_another_size_is_an_error_or_a_documented_resize(tmp_path):
    small = plausible_depth()[::2, ::2].copy()  # 24x80 for a 48x160 image
    root = make_root(tmp_path, depth=small)
    with pytest.raises(ValueError, match=r'000000\.png.*sample_idx=0.*24x80.*48x160'):
        train_dataset(root)[0]
    packed = train_dataset(root, mismatch='resize')[0]
    img = packed['inputs']['img']
    dep = packed['inputs']['depth_map']
    assert tuple(dep.shape[-2:]) == tuple(img.shape[-2:])


# ------------------------------------------------------------------ the detector
@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    from mmengine.config import Config
    cfg = Config.fromfile(str(REPO / 'configs/skd_wm3d_synth.py')).model
    # the synth config's detector, its ResNet-18 4x narrower (these tests are about the
    # losses' handling of bad boxes and depth, not capacity; 4x faster on a shared CPU)
    cfg.backbone.base_channels = 16
    cfg.neck.in_channels = [16, 32, 64, 128]
    m = MODELS.build(cfg)
    m.train()
    return m


H, W = 64, 192
K = [[120.0, 0.0, 96.0, 9.0], [0.0, 120.0, 28.0, 0.0], [0.0, 0.0, 1.0, 0.003],
     [0.0, 0.0, 0.0, 1.0]]


def scene_depth():
    """(1, 1, H, W): ground below the horizon (row 28) and a car surface at 10 m."""
    v = torch.arange(H, dtype=torch.float32)[:, None].expand(H, W)
    d = torch.where(v > 29, 120.0 * 1.65 / (v - 28).clamp(min=1), torch.zeros(()))
    d = d.clone()
    d[20:50, 60:110] = 10.0
    return d[None, None]


GOOD_BOX = [60.0, 20.0, 110.0, 50.0]


def losses_and_grads(model, depth, boxes, labels):
    """SKDWM3D.loss on one image; the summed loss is back-propagated."""
    sample = Det3DDataSample(metainfo=dict(cam2img=K, img_path='bad_input.png',
                                           batch_input_shape=(H, W), img_shape=(H, W)))
    gt = InstanceData()
    gt.bboxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    gt.labels = torch.tensor(labels, dtype=torch.long)
    sample.gt_instances = gt
    sample.gt_instances_3d = InstanceData()
    torch.manual_seed(1)
    batch = dict(imgs=torch.randn(1, 3, H, W), depth_maps=depth)
    model.zero_grad()
    losses = model.loss(batch, [sample])
    total = sum(v for n, v in losses.items() if 'loss' in n)
    total.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    return losses, grads


def assert_finite(losses, grads):
    bad = [n for n, v in losses.items() if not torch.isfinite(v).all()]
    assert not bad, f'non-finite losses {bad}'
    bad = [n for n, g in grads.items() if not torch.isfinite(g).all()]
    assert not bad, f'non-finite gradients {bad[:5]}'
    # the image still trains the encoder (the 2D heatmap term at least)
    assert grads['backbone.conv1.weight'].abs().sum() > 0


def no_depth_in(box):
    def f(d):
        d = d.clone()
        x1, y1, x2, y2 = (int(v) for v in box)
        d[..., y1:y2, x1:x2] = 0.0
        return d
    return f


CASES = {
    # name: (depth transform, boxes, labels)
    'all-zero depth': (torch.zeros_like, [GOOD_BOX], [2]),
    'negative depth': (lambda d: -d - 1.0, [GOOD_BOX], [2]),
    'zero-area boxes': (None, [GOOD_BOX, [50., 30., 50., 40.], [10., 10., 10., 10.]], [2, 0, 1]),
    'boxes outside the image': (None, [GOOD_BOX, [-100., -50., -10., -5.],
                                       [300., 100., 400., 200.]], [2, 0, 2]),
    'box without valid depth pixels': (no_depth_in([130., 25., 160., 55.]),
                                       [GOOD_BOX, [130., 25., 160., 55.]], [2, 2]),
    'image without any 2D box': (None, [], []),
}


@pytest.mark.parametrize('case', list(CASES))
def test_detector_losses_stay_finite(model, case):
    fn, boxes, labels = CASES[case]
    depth = scene_depth() if fn is None else fn(scene_depth())
    losses, grads = losses_and_grads(model, depth, boxes, labels)
    assert_finite(losses, grads)


def test_instances_without_depth_get_no_weak_3d_loss(model):
    """Masked out, not averaged in: adding a box with no valid depth pixels (or of zero
    area, or outside the image) leaves the student's weak depth loss of the batch as it was."""
    ref, _ = losses_and_grads(model, scene_depth(), [GOOD_BOX], [2])
    empty = [130., 25., 160., 55.]
    for depth, extra in ((no_depth_in(empty)(scene_depth()), empty),
                         (scene_depth(), [50., 30., 50., 40.]),
                         (scene_depth(), [-100., -50., -10., -5.])):
        out, _ = losses_and_grads(model, depth, [GOOD_BOX, extra], [2, 2])
        for name in ('student.loss_depth', 'student.loss_align'):
            torch.testing.assert_close(out[name], ref[name], rtol=1e-5, atol=1e-6)


def test_invalid_depth_values_are_masked_on_the_real_path(tmp_path, model):
    """NaN / inf / negative pixels in a .npy depth map: LoadDepthMap makes them 0, the batch
    reaching the model is finite and the losses and gradients are finite."""
    d = plausible_depth()
    d[12:20, 45:75] = np.nan
    d[22:30, 45:75] = np.inf
    d[30:36, 45:75] = -4.0
    d[40:, :] = -np.inf
    root = make_root(tmp_path, depth=d, depth_name='000000.npy')
    ds = train_dataset(root)
    batch = model.data_preprocessor(pseudo_collate([ds[0]]), training=True)
    depth = batch['inputs']['depth_maps']
    assert torch.isfinite(depth).all() and (depth >= 0).all()
    assert (depth > 0).any()
    losses, grads = losses_and_grads_from_batch(model, batch)
    assert_finite(losses, grads)


def losses_and_grads_from_batch(model, batch):
    model.zero_grad()
    losses = model.loss(batch['inputs'], batch['data_samples'])
    sum(v for n, v in losses.items() if 'loss' in n).backward()
    return losses, {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


def test_nan_and_inf_depth_given_straight_to_the_detector(model):
    d = scene_depth()
    d[..., 40:, ::7] = float('nan')
    d[..., 45:, 3::7] = float('inf')
    losses, grads = losses_and_grads(model, d, [GOOD_BOX], [2])
    assert_finite(losses, grads)


# -------------------------------------------------------------- classes and info files
def test_label_that_is_not_a_kitti_class_is_an_error_naming_the_sample(tmp_path):
    """A class of the info file outside the config (Van) is dropped, as mmdet3d does; a label
    index that is no class at all is an error naming the sample and the file."""
    root = make_root(tmp_path, instances=[dict(bbox=BOXES[0], bbox_label=2),
                                          dict(bbox=BOXES[1], bbox_label=3)])
    ann = train_dataset(root).get_data_info(0)['ann_info']
    assert ann['gt_bboxes_labels'].tolist() == [2]
    root2 = make_root(tmp_path / 'b', instances=[dict(bbox=BOXES[0], bbox_label=17)])
    with pytest.raises(ValueError, match=r'sample_idx=0.*kitti_infos_train\.pkl.*17'):
        train_dataset(root2)


def test_info_file_of_mmdet3d_1_0_loads_its_2d_boxes(kitti_real):
    """mmdet3d 1.0's v2-like file (``sample_id``, no ``categories``) has the same 2D labels."""
    cfg = small_synth_cfg(kitti_real, kitti_real / 'work')
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.ann_file = 'demo/000008.pkl'
    ds_cfg.pipeline = []
    ds = DATASETS.build(ds_cfg)
    ann = ds.get_data_info(0)['ann_info']
    assert ann['gt_bboxes_labels'].tolist() == [2] * 6
    np.testing.assert_allclose(ann['gt_bboxes'][0], [0.0, 192.37, 402.31, 374.0], atol=1e-4)


def test_coco_style_info_file_is_named(kitti_real):
    cfg = small_synth_cfg(kitti_real, kitti_real / 'work')
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.ann_file = 'tests/kitti_infos_mono3d.coco.json'
    with pytest.raises(ValueError, match=r'kitti_infos_mono3d\.coco\.json.*not an mmdet3d v2'):
        DATASETS.build(ds_cfg)


# ------------------------------------------------------------------------- calib files
CALIB = {
    'P0': np.arange(12, dtype=float).reshape(3, 4), 'P1': np.ones((3, 4)),
    'P2': np.array([[721.5377, 0, 609.5593, 44.85728], [0, 721.5377, 172.854, 0.2163791],
                    [0, 0, 1, 0.002745884]]),
    'P3': np.full((3, 4), 2.0), 'R0_rect': np.eye(3) * 0.5,
    'Tr_velo_to_cam': np.full((3, 4), -1.5), 'Tr_imu_to_velo': np.full((3, 4), 3.25)}


def calib_text(calib=CALIB, names=None):
    names = names or {}
    return ''.join(f'{names.get(k, k)}: ' + ' '.join(f'{v:.12e}' for v in m.ravel()) + '\n'
                   for k, m in calib.items())


def test_calib_reads_kitti_files_and_spellings(tmp_path):
    p = tmp_path / 'calib.txt'
    p.write_text(calib_text() + '\n')  # KITTI's trailing blank line
    out = read_calib(str(p), required=list(CALIB))
    assert set(out) == set(CALIB)
    for k, m in CALIB.items():
        np.testing.assert_array_equal(out[k], m)
        assert out[k].dtype == np.float64
    assert out['P2'].shape == (3, 4) and out['R0_rect'].shape == (3, 3)
    # the tracking benchmark's spellings, without colons
    text = calib_text(names={'R0_rect': 'R_rect', 'Tr_velo_to_cam': 'Tr_velo_cam',
                             'Tr_imu_to_velo': 'Tr_imu_velo'})
    p.write_text(text.replace('R_rect:', 'R_rect').replace('Tr_velo_cam:', 'Tr_velo_cam'))
    out = read_calib(str(p), required=list(CALIB))
    np.testing.assert_array_equal(out['R0_rect'], CALIB['R0_rect'])
    np.testing.assert_array_equal(out['Tr_velo_to_cam'], CALIB['Tr_velo_to_cam'])
    # only P2 is required by default
    p.write_text(calib_text({'P2': CALIB['P2']}))
    assert list(read_calib(str(p))) == ['P2']


def _replace_row(key, new):
    lines = calib_text().splitlines()
    return '\n'.join(new if ln.startswith(key + ':') else ln for ln in lines if
                     new is not None or not ln.startswith(key + ':')) + '\n'


@pytest.mark.parametrize('text,match', [
    (_replace_row('P2', None), r"required calib row\(s\) \['P2'\] missing"),
    (_replace_row('P2', 'P2: 1 2 3 4 5 6 7 8 9 10 11'), r"row 'P2' \(line 3\) has 11 values, "
                                                        r'expected 12'),
    (_replace_row('R0_rect', 'R0_rect: 1 0 0 0 1 0 0 0 1 0 0 0'), r"'R0_rect'.*12 values.*9"),
    (_replace_row('P2', 'P2: 1 2 3 4 5 6 7 8 9 10 11 abc'), r"row 'P2'.*'abc' is not a number"),
    (_replace_row('P2', 'P2: 1 2 3 4 5 6 7 8 9 10 11 nan'), r"row 'P2'.*non-finite value 'nan'"),
    (_replace_row('P0', 'P0: 1 2 3 4 5 6 7 8 9 10 inf 1'), r"row 'P0'.*non-finite value 'inf'"),
    (_replace_row('P3', 'P3:'), r"row 'P3' \(line 4\) has no values"),
    (calib_text() + 'P2: ' + ' '.join(['1'] * 12) + '\n', r"row 'P2' given twice"),
    (calib_text() + 'R_rect: ' + ' '.join(['1'] * 9) + '\n', r"row 'R0_rect' given twice"),
    ('', r'required calib row'),
])
def test_malformed_calib_names_file_row_and_problem(tmp_path, text, match):
    p = tmp_path / '000042.txt'
    p.write_text(text)
    with pytest.raises(ValueError, match=match) as e:
        read_calib(str(p))
    assert str(p) in str(e.value)


def test_calib_missing_or_binary_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.txt'):
        read_calib(str(tmp_path / 'nope.txt'))
    p = tmp_path / 'bin.txt'
    p.write_bytes(b'P2: \xff\xfe\x00\x01')
    with pytest.raises(ValueError, match=r'bin\.txt.*not a text file'):
        read_calib(str(p))
    p.write_text(_replace_row('Tr_imu_to_velo', None))
    with pytest.raises(ValueError, match=r"\['Tr_imu_to_velo', 'extra'\] missing"):
        read_calib(str(p), required=['P2', 'Tr_imu_to_velo', 'extra'])


# ------------------------------------------------------------------------- label files
CAR = 'Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59'
DONTCARE = 'DontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10'


def test_label_reads_kitti_lines(tmp_path):
    p = tmp_path / 'label.txt'
    p.write_text(CAR + '\n\n' + DONTCARE + '\n')
    car, dc = read_label(str(p))
    assert car['type'] == 'Car' and car['occluded'] == 0 and car['alpha'] == -1.58
    np.testing.assert_array_equal(car['bbox'], [587.01, 173.33, 614.12, 200.12])
    np.testing.assert_array_equal(car['dimensions'], [1.65, 1.67, 3.64])  # h w l
    np.testing.assert_array_equal(car['location'], [-0.65, 1.71, 46.70])
    assert car['rotation_y'] == -1.59 and 'score' not in car
    assert dc['type'] == 'DontCare' and dc['occluded'] == -1
    p.write_text(CAR + ' 0.93\n')
    assert read_label(str(p))[0]['score'] == 0.93
    p.write_text('')
    assert read_label(str(p)) == []


@pytest.mark.parametrize('line,match', [
    (CAR.rsplit(' ', 1)[0], r'line 2 has 14 fields, expected 15'),
    (CAR + ' 0.5 7', r'line 2 has 17 fields'),
    (CAR.replace('46.70', '4x.70'), r"line 2: '4x\.70' is not a number"),
    (CAR.replace('46.70', 'nan'), r"line 2: non-finite value 'nan'"),
    (CAR.replace(' 0 -1.58', ' 0.5 -1.58'), r"line 2: occluded '0\.5' is not an integer"),
    (CAR.replace('587.01 173.33 614.12', '614.12 173.33 587.01'), r'line 2: 2D box.*x2 < x1'),
])
def test_malformed_label_names_file_line_and_problem(tmp_path, line, match):
    p = tmp_path / '000007.txt'
    p.write_text(DONTCARE + '\n' + line + '\n')
    with pytest.raises(ValueError, match=match) as e:
        read_label(str(p))
    assert str(p) in str(e.value)


# -------------------------------------------------------------------------- checkpoints
class Toy(BaseModel):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return self.fc(inputs)


@pytest.fixture
def good_ckpt(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / 'good.pth'
    torch.save(dict(state_dict=Toy().state_dict(), meta=dict(iter=3)), path)
    return path


def _member_data_offset(path, name_suffix):
    """Byte offset of a stored zip member's data (torch stores members uncompressed)."""
    data = path.read_bytes()
    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if i.filename.endswith(name_suffix))
    o = info.header_offset
    n, m = struct.unpack('<HH', data[o + 26:o + 30])
    return o + 30 + n + m, info.file_size


def damage(good, kind, out):
    data = bytearray(good.read_bytes())
    if kind == 'truncated':
        data = data[:len(data) // 2]
    elif kind == 'empty':
        data = b''
    elif kind == 'flipped tensor byte':
        start, _ = _member_data_offset(good, 'data/0')
        data[start + 2] ^= 0x40
    elif kind == 'garbage':
        data = b'this is not a checkpoint' * 20
    out.write_bytes(bytes(data))
    return out


PROBLEMS = {'truncated': 'damaged', 'empty': 'empty', 'flipped tensor byte': 'Bad CRC-32',
            'garbage': 'not the zip archive'}


@pytest.mark.parametrize('kind', list(PROBLEMS))
def test_corrupted_checkpoint_through_load_checkpoint(tmp_path, good_ckpt, kind):
    bad = damage(good_ckpt, kind, tmp_path / f'{kind.replace(" ", "_")}.pth')
    with pytest.raises(CorruptCheckpointError) as e:
        load_checkpoint(Toy(), str(bad), map_location='cpu')
    msg = str(e.value)
    assert str(bad) in msg and 'corrupted or truncated checkpoint' in msg
    assert PROBLEMS[kind] in msg


def test_flipped_byte_is_what_torch_alone_would_load(tmp_path, good_ckpt):
    """Without the CRC check the damaged tensor loads silently (why the check exists)."""
    bad = damage(good_ckpt, 'flipped tensor byte', tmp_path / 'flip.pth')
    a = torch.load(good_ckpt)['state_dict']['fc.weight']
    b = torch.load(bad)['state_dict']['fc.weight']
    assert not torch.equal(a, b)


def test_sound_checkpoint_loads_as_before(good_ckpt):
    model = Toy()
    ckpt = load_checkpoint(model, str(good_ckpt), map_location='cpu')
    ref = torch.load(good_ckpt)
    assert ckpt['meta'] == ref['meta'] == dict(iter=3)
    for k, v in ref['state_dict'].items():
        assert torch.equal(model.state_dict()[k], v)
    with pytest.raises(FileNotFoundError, match='absent.pth'):
        load_checkpoint(Toy(), str(good_ckpt.with_name('absent.pth')))


def test_checkpoint_written_without_crc32s_still_loads(tmp_path):
    """torch.serialization.set_crc32_options(False) writes CRC 0: nothing to check, no error."""
    set_crc = getattr(torch.serialization, 'set_crc32_options', None)
    if set_crc is None:
        pytest.skip('torch without set_crc32_options')
    before = torch.serialization.get_crc32_options()
    path = tmp_path / 'nocrc.pth'
    try:
        set_crc(False)
        torch.save(dict(state_dict=Toy().state_dict()), path)
    finally:
        set_crc(before)
    with zipfile.ZipFile(path) as z:
        assert all(i.CRC == 0 for i in z.infolist() if i.file_size)
    load_checkpoint(Toy(), str(path), map_location='cpu')


class _Evil:
    def __reduce__(self):
        return (print, ('never',))


def test_unsafe_checkpoint_keeps_torchs_refusal(tmp_path):
    """A sound archive holding a disallowed object is refused by torch, not relabelled."""
    path = tmp_path / 'evil.pth'
    torch.save(dict(state_dict={}, meta=_Evil()), path)
    with pytest.raises(pickle.UnpicklingError, match='Weights only load failed'):
        load_checkpoint(Toy(), str(path))


@pytest.mark.parametrize('kind', ['truncated', 'flipped tensor byte'])
def test_corrupted_checkpoint_through_runner_load_from(tmp_path, good_ckpt, kind):
    bad = damage(good_ckpt, kind, tmp_path / 'bad.pth')
    runner = Runner(model=Toy(), work_dir=str(tmp_path / 'work'), load_from=str(bad))
    with pytest.raises(CorruptCheckpointError, match=r'bad\.pth: corrupted or truncated'):
        runner.load_or_resume()
    ok = Runner(model=Toy(), work_dir=str(tmp_path / 'work2'), load_from=str(good_ckpt),
                experiment_name='ok')
    ok.load_or_resume()
    assert torch.equal(ok.model.fc.weight, torch.load(good_ckpt)['state_dict']['fc.weight'])
