"""COCO json + intrinsics -> weak info files (mmdet3d_skd/datasets/coco_convert.py,
tools/convert_coco.py): the output, that nothing 3D is written, each bad input's error, an
interrupted conversion, the size priors, and depth maps for the converted images."""
import copy
import importlib.util
import json
import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from mmdet3d_skd.datasets import coco_convert
from mmdet3d_skd.datasets.coco_convert import CocoConversionError, convert, parse_intrinsics
from mmdet3d_skd.datasets.size_priors import (SIZE_PRIORS, MissingSizePriorError, lookup_size_prior,
                                              resolve_size_priors)
from tests.conftest import REPO
from tests.test_weak_means_weak import FORBIDDEN_KEYS, all_keys

W, H = 64, 48
K = [[50.0, 0.0, 32.0], [0.0, 50.0, 24.0], [0.0, 0.0, 1.0]]


def _tool(name):
    spec = importlib.util.spec_from_file_location(f'skd_{name}', REPO / 'tools' / f'{name}.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def base_json():
    """Two images (the second without intrinsics), two classes, one crowd box, and 3D keys of
    mmdet3d's mono3d json that must be ignored."""
    return dict(
        images=[dict(id=1, file_name='sub/0.png', width=W, height=H, cam_intrinsic=K),
                dict(id=2, file_name='sub/1.png', width=W, height=H)],
        categories=[dict(id=1, name='car'), dict(id=2, name='person')],
        annotations=[
            dict(id=1, image_id=1, category_id=1, bbox=[10, 10, 20, 15], iscrowd=0,
                 bbox_cam3d=[1, 1.5, 10, 4, 1.5, 1.7, 0.1], center2d=[20, 17, 10], depth=10,
                 velo_cam3d=-1, attribute_id=-1),
            dict(id=2, image_id=2, category_id=2, bbox=[0, 0, 5, 30]),
            dict(id=3, image_id=2, category_id=1, bbox=[30, 5, 10, 10], iscrowd=1)])


@pytest.fixture
def data(tmp_path):
    """``(root, write)``: two small images under ``root/img/sub``; ``write(json)`` saves a json
    and returns its path."""
    root = tmp_path / 'data'
    (root / 'img' / 'sub').mkdir(parents=True)
    for i in range(2):
        cv2.imwrite(str(root / 'img' / 'sub' / f'{i}.png'), np.full((H, W, 3), 60 * i, np.uint8))

    def write(obj, name='train.json'):
        path = root / name
        path.write_text(json.dumps(obj))
        return str(path)
    return root, write


def load(path):
    with open(path, 'rb') as f:
        return pickle.load(f)


def test_converts_boxes_labels_intrinsics_and_priors(data):
    root, write = data
    res = convert({'train': write(base_json())}, str(root / 'img'), str(root / 'out'),
                  intrinsics=parse_intrinsics('40,42,31,23'))
    assert res['train']['images'] == 2 and res['train']['instances'] == 2
    assert res['train']['crowd_skipped'] == 1
    info = load(root / 'out' / 'mono3d_infos_train.pkl')
    meta, (a, b) = info['metainfo'], info['data_list']
    assert meta['classes'] == ['car', 'person']
    assert meta['categories'] == {'car': 0, 'person': 1}
    # 'car' -> KITTI's Car, 'person' -> KITTI's Pedestrian (alias)
    assert meta['dims_prior'] == [list(SIZE_PRIORS['kitti']['Car']),
                                  list(SIZE_PRIORS['kitti']['Pedestrian'])]
    assert meta['dims_prior_source'] == {'car': 'kitti:Car', 'person': 'kitti:Pedestrian'}
    assert a['sample_idx'] == 1 and a['instances'] == [dict(bbox=[10.0, 10.0, 30.0, 25.0],
                                                            bbox_label=0)]
    assert b['instances'] == [dict(bbox=[0.0, 0.0, 5.0, 30.0], bbox_label=1)]
    cam_a, cam_b = a['images']['CAM2'], b['images']['CAM2']
    assert cam_a['img_path'] == 'sub/0.png' and cam_a['depth_path'] == 'sub/0.png'
    assert (cam_a['width'], cam_a['height']) == (W, H)
    np.testing.assert_allclose(np.array(cam_a['cam2img'])[:3, :3], K)  # its own
    np.testing.assert_allclose(np.array(cam_b['cam2img'])[:3, :3],
                               [[40, 0, 31], [0, 42, 23], [0, 0, 1]])  # the shared one
    assert np.array(cam_b['cam2img']).shape == (4, 4)


def test_converted_training_infos_carry_no_3d_field_and_pass_the_weak_guards(data):
    """Whatever 3D keys the json holds, the info file has 2D boxes, labels, the image and its
    intrinsics only; WeakMono3DDataset trains on it through WeakKittiDataset's guards."""
    from mmdet3d.registry import DATASETS
    root, write = data
    convert({'train': write(base_json())}, str(root / 'img'), str(root / 'out'),
            intrinsics=parse_intrinsics('40,42,31,23'))
    info = load(root / 'out' / 'mono3d_infos_train.pkl')
    assert not FORBIDDEN_KEYS & set(all_keys(info['data_list']))
    assert {k for e in info['data_list'] for k in e} == {'sample_idx', 'images', 'instances'}
    assert {k for e in info['data_list'] for i in e['instances'] for k in i} == \
        {'bbox', 'bbox_label'}
    assert {k for e in info['data_list'] for k in e['images']['CAM2']} == \
        {'img_path', 'depth_path', 'height', 'width', 'cam2img'}
    assert set(info['data_list'][0]['images']) == {'CAM2'}

    pipeline = [dict(type='LoadImageFromFileMono3D'),
                dict(type='LoadAnnotations3D', with_bbox=True, with_label=True,
                     with_bbox_3d=False, with_label_3d=False, with_bbox_depth=False),
                dict(type='PackSKDInputs', keys=['img', 'gt_bboxes', 'gt_bboxes_labels'])]
    cfg = dict(type='WeakMono3DDataset', data_root=str(root / 'out'),
               ann_file='mono3d_infos_train.pkl', data_prefix=dict(img=str(root / 'img')),
               pipeline=pipeline, modality=dict(use_lidar=False, use_camera=True),
               load_type='fov_image_based', box_type_3d='Camera',
               metainfo=dict(classes=['person', 'car']))
    ds = DATASETS.build(cfg)
    sample = ds[0]['data_samples']
    assert len(sample.gt_instances_3d) == 0
    assert sample.gt_instances.labels.tolist() == [1]  # 'car' is class 1 of the config
    assert ds[1]['data_samples'].gt_instances.labels.tolist() == [0]
    # the same guards as WeakKittiDataset: a pipeline loading 3D labels is refused
    bad = copy.deepcopy(cfg)
    bad['pipeline'][1].update(with_bbox_3d=True, with_label_3d=True)
    with pytest.raises(ValueError, match='loads 3D annotations'):
        DATASETS.build(bad)
    with pytest.raises(ValueError, match=r"classes \['truck'\] of the config are not in"):
        DATASETS.build(dict(cfg, metainfo=dict(classes=['truck'])))


def _no_intrinsics(j):
    del j['images'][0]['cam_intrinsic']


def _singular(j):
    j['images'][0]['cam_intrinsic'] = [[50, 0, 32], [0, 0, 24], [0, 0, 1]]


def _principal_point_outside(j):
    j['images'][0]['cam_intrinsic'] = [[50, 0, 300], [0, 50, 24], [0, 0, 1]]


def _size_disagrees(j):
    j['images'][0]['width'] = 128


def _no_prior(j):
    j['categories'].append(dict(id=7, name='forklift'))


def _zero_area(j):
    j['annotations'][0]['bbox'] = [10, 10, 0, 5]


def _outside(j):
    j['annotations'][0]['bbox'] = [100, 10, 20, 15]


def _duplicate_id(j):
    j['images'][1]['id'] = 1


def _missing_file(j):
    j['images'][0]['file_name'] = 'sub/nope.png'


def _unknown_category(j):
    j['annotations'][0]['category_id'] = 9


BAD = [
    (_no_intrinsics, r'image id 1 \(.sub/0.png.\): no intrinsics'),
    (_singular, r'image id 1 .*singular or invalid intrinsics'),
    (_principal_point_outside, r'image id 1 .*principal point \(300.0, 24.0\) lies outside'),
    (_size_disagrees, r'image id 1 .*the json says width 128 but the file is 64x48'),
    (_no_prior, r"category id 7 'forklift'.*no size prior"),
    (_zero_area, r'annotation 1 of image id 1 .*zero area'),
    (_outside, r'annotation 1 of image id 1 .*outside the 64x48 image'),
    (_duplicate_id, r"duplicate image id 1: images\[1\] \('sub/1.png'\)"),
    (_missing_file, r'image id 1 .*image file .*sub/nope.png not found'),
    (_unknown_category, r'annotation 1 \(image 1\): category_id 9'),
]


@pytest.mark.parametrize('mutate,match', BAD, ids=[f.__name__[1:] for f, _ in BAD])
def test_bad_input_is_an_error_naming_the_file_and_the_entry(data, mutate, match):
    root, write = data
    good = write(base_json(), 'good.json')
    out = root / 'out'
    convert({'train': good}, str(root / 'img'), str(out), intrinsics=np.array(K))
    before = (out / 'mono3d_infos_train.pkl').read_bytes()
    j = base_json()
    mutate(j)
    path = write(j)
    intr = None if mutate is _no_intrinsics else np.array(K)
    with pytest.raises(CocoConversionError, match=match) as e:
        convert({'train': path}, str(root / 'img'), str(out), intrinsics=intr)
    assert isinstance(e.value, ValueError) and path in str(e.value)
    # nothing already written is lost
    assert (out / 'mono3d_infos_train.pkl').read_bytes() == before


def test_clip_boxes_and_the_command_line(data, capsys):
    root, write = data
    j = base_json()
    j['annotations'][0]['bbox'] = [50, 40, 30, 20]  # crosses the bottom-right corner
    path = write(j)
    tool = _tool('convert_coco')
    with pytest.raises(SystemExit, match='outside the 64x48 image'):
        tool.main(['--train', path, '--image-root', str(root / 'img'), '--out-dir',
                   str(root / 'out'), '--intrinsics', '50,50,32,24'])
    tool.main(['--train', path, '--val', path, '--image-root', str(root / 'img'), '--out-dir',
               str(root / 'out'), '--intrinsics', '50,50,32,24', '--clip-boxes',
               '--prior', 'car=4.5,1.6,1.8', '--classes', 'car'])
    out = capsys.readouterr().out
    assert "class_names = ['car']" in out and 'dims_prior = [[4.5, 1.6, 1.8]]' in out
    info = load(root / 'out' / 'mono3d_infos_val.pkl')
    assert info['data_list'][0]['instances'] == [dict(bbox=[50.0, 40.0, 64.0, 48.0],
                                                      bbox_label=0)]
    assert info['data_list'][1]['instances'] == []  # 'person' not among --classes


def test_interrupted_conversion_completes_on_rerun(data, monkeypatch):
    root, write = data
    out = root / 'out'
    train, val = write(base_json(), 'train.json'), write(base_json(), 'val.json')
    kw = dict(image_root=str(root / 'img'), out_dir=str(out), intrinsics=np.array(K))
    convert({'train': train, 'val': val}, **kw)
    old_val = (out / 'mono3d_infos_val.pkl').read_bytes()

    j = base_json()
    j['annotations'].pop(1)
    write(j, 'train.json')
    write(j, 'val.json')
    real_replace = os.replace

    def killed(src, dst):  # the run is killed as it writes the second file
        if str(dst).endswith('mono3d_infos_val.pkl'):
            Path(str(src) + '.copy.tmp').write_bytes(b'half')  # what a SIGKILL leaves
            raise KeyboardInterrupt
        return real_replace(src, dst)
    monkeypatch.setattr(coco_convert.os, 'replace', killed)
    with pytest.raises(KeyboardInterrupt):
        convert({'train': train, 'val': val}, **kw)
    monkeypatch.setattr(coco_convert.os, 'replace', real_replace)
    # train written whole, val still the earlier complete file (nothing lost)
    assert load(out / 'mono3d_infos_train.pkl')['data_list'][1]['instances'] == []
    assert (out / 'mono3d_infos_val.pkl').read_bytes() == old_val
    assert any(f.endswith('.tmp') for f in os.listdir(out))
    mtime = (out / 'mono3d_infos_train.pkl').stat().st_mtime_ns

    res = convert({'train': train, 'val': val}, **kw)
    assert res['train']['skipped'] and not res['val']['skipped']
    assert (out / 'mono3d_infos_train.pkl').stat().st_mtime_ns == mtime
    assert load(out / 'mono3d_infos_val.pkl')['data_list'][1]['instances'] == []
    assert not [f for f in os.listdir(out) if f.endswith('.tmp')]


def test_size_prior_table_and_overrides():
    assert lookup_size_prior('Car')[1] == 'kitti:Car'
    assert lookup_size_prior('car', tables=('nuscenes', 'kitti'))[1] == 'nuscenes:car'
    assert lookup_size_prior('Construction Vehicle')[1] == 'nuscenes:construction_vehicle'
    assert lookup_size_prior('motorbike')[1] == 'nuscenes:motorcycle'
    assert lookup_size_prior('forklift') is None
    priors, sources = resolve_size_priors(['Van', 'bus', 'forklift'],
                                          {'forklift': [2.5, 2.1, 1.2]})
    assert priors == [SIZE_PRIORS['kitti']['Van'], SIZE_PRIORS['nuscenes']['bus'],
                      (2.5, 2.1, 1.2)]
    assert sources == ['kitti:Van', 'nuscenes:bus', 'given']
    with pytest.raises(MissingSizePriorError, match=r"\['forklift'\]"):
        resolve_size_priors(['car', 'forklift'])
    with pytest.raises(ValueError, match='three positive'):
        resolve_size_priors(['car'], {'car': [4, -1, 2]})
    # every prior is (l, h, w): a car is longer than wide, a pedestrian taller than long
    for table in SIZE_PRIORS.values():
        for name, (l, h, w) in table.items():
            assert min(l, h, w) > 0.2, name
    assert SIZE_PRIORS['nuscenes']['car'][0] > SIZE_PRIORS['nuscenes']['car'][2]
    assert SIZE_PRIORS['nuscenes']['pedestrian'][1] > SIZE_PRIORS['nuscenes']['pedestrian'][0]


def test_depth_maps_for_the_converted_images(data, tmp_path):
    """generate_depth.py --info: a depth PNG per image of the info files, at its depth_path,
    from an estimator that got the image's own intrinsics."""
    root, write = data
    convert({'train': write(base_json())}, str(root / 'img'), str(root / 'out'),
            intrinsics=parse_intrinsics('40,42,31,23'))
    est = tmp_path / 'est.py'
    est.write_text('import numpy as np\n'
                   'def f(img, cam2img):\n'
                   '    return np.full(img.shape[:2], float(cam2img[0][0]) / 10)\n')
    tool = _tool('generate_depth')
    stats = tool.main(['--info', str(root / 'out' / 'mono3d_infos_train.pkl'), '--image-root',
                       str(root / 'img'), '--out-dir', str(root / 'depth'), '--estimator',
                       f'{est}:f', '--no-progress'])
    assert stats.written == 2
    for name, fx in (('0', 50.0), ('1', 40.0)):
        d = cv2.imread(str(root / 'depth' / 'sub' / f'{name}.png'), cv2.IMREAD_UNCHANGED)
        assert d.dtype == np.uint16 and d.shape == (H, W)
        assert np.all(d == fx / 10 * 256)
    with pytest.raises(SystemExit):
        tool.main(['--info', 'x.pkl', '--estimator', f'{est}:f'])  # needs --image-root etc.
