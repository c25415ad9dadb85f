"""WeakKittiDataset: 2D boxes only in weak training, KITTI otherwise."""
import copy
import os.path as osp
import pickle

import cv2
import numpy as np
import pytest
import torch

from mmdet3d.datasets import KittiDataset
from mmdet3d_skd.datasets.transforms import LoadDepthMap  # noqa: F401
from mmdet3d_skd.datasets.weak_kitti_dataset import WeakKittiDataset

REAL = '/work/shared/data/kitti-real'
CLASSES = ['Pedestrian', 'Cyclist', 'Car']
WEAK_PIPELINE = [
    dict(type='LoadImageFromFileMono3D'),
    dict(type='LoadAnnotations3D', with_bbox=True, with_label=True,
         with_bbox_3d=False, with_label_3d=False, with_bbox_depth=False),
    dict(type='PackSKDInputs', keys=['img', 'gt_bboxes', 'gt_bboxes_labels',
                                     'gt_bboxes_3d', 'gt_labels_3d',
                                     'centers_2d', 'depths']),
]
THREE_D_KEYS = ('gt_bboxes_3d', 'gt_labels_3d', 'centers_2d', 'depths',
                'bbox_3d', 'bbox_label_3d', 'center_2d', 'depth', 'alpha',
                'num_lidar_pts')


def build(ann_file, data_root, pipeline=WEAK_PIPELINE, cls=WeakKittiDataset,
          **kw):
    args = dict(
        data_root=data_root,
        ann_file=ann_file,
        data_prefix=dict(img='training/image_2'),
        pipeline=pipeline,
        modality=dict(use_lidar=False, use_camera=True),
        load_type='fov_image_based',
        metainfo=dict(classes=CLASSES),
        box_type_3d='Camera',
        test_mode=False)
    args.update(kw)
    return cls(**args)


def assert_no_3d(obj, where):
    text = repr(sorted(obj.keys())) if isinstance(obj, dict) else repr(obj)
    for key in THREE_D_KEYS:
        assert f"'{key}'" not in text, f'{key} in {where}'


# -------------------------------------------------------- real KITTI frame
needs_real = pytest.mark.skipif(
    not osp.exists(osp.join(REAL, 'tests', 'kitti_infos_train.pkl')),
    reason=f'real KITTI frames not found at {REAL}')


@needs_real
def test_real_frame_weak_training_has_label2_boxes_only():
    root = osp.join(REAL, 'tests')
    with open(osp.join(root, 'kitti_infos_train.pkl'), 'rb') as f:
        raw = pickle.load(f)['data_list'][0]
    ds = build('kitti_infos_train.pkl', root)
    assert len(ds) == 1
    info = ds.get_data_info(0)
    for key in ('cam_instances', 'lidar_points', 'lidar_path', 'plane'):
        assert key not in info
    assert sorted(info['ann_info']) == ['gt_bboxes', 'gt_bboxes_labels']
    assert all(sorted(i) == ['bbox', 'bbox_label'] for i in info['instances'])

    sample = ds[0]
    ds_ = sample['data_samples']
    assert len(ds_.gt_instances_3d.keys()) == 0
    assert ds_.eval_ann_info is None
    for key in THREE_D_KEYS:
        assert key not in ds_.metainfo
    expected = torch.tensor([i['bbox'] for i in raw['instances']])
    torch.testing.assert_close(ds_.gt_instances.bboxes, expected)
    assert ds_.gt_instances.labels.tolist() == [0]  # one Pedestrian
    assert tuple(sample['inputs']['img'].shape) == (3, 370, 1224)
    np.testing.assert_allclose(
        ds_.cam2img, raw['images']['CAM2']['cam2img'])


@needs_real
def test_real_frame_with_depth_map(tmp_path):
    """The real frame with a depth map written in tmp_path."""
    root = osp.join(REAL, 'tests')
    depth = np.zeros((370, 1224), np.uint16)
    depth[143:308, 712:811] = 8 * 256  # the pedestrian's 2D box, at 8 m
    cv2.imwrite(str(tmp_path / '000000.png'), depth)
    pipeline = WEAK_PIPELINE[:2] + [
        dict(type='LoadDepthMap', depth_prefix=str(tmp_path)),
        dict(type='DepthRandomFlip3D', flip_ratio_bev_horizontal=1.0),
        dict(type='DepthAffineResize', img_scale=(640, 192), down_ratio=4),
        WEAK_PIPELINE[2]
    ]
    sample = build('kitti_infos_train.pkl', root, pipeline=pipeline)[0]
    d = sample['inputs']['depth_map']
    assert tuple(d.shape) == (1, 192, 640)
    box = sample['data_samples'].gt_instances.bboxes[0]
    # the flipped, resized 2D box covers the flipped, resized depth patch
    ys, xs = torch.nonzero(d[0] == 8.0, as_tuple=True)
    assert abs(xs.min().item() - box[0].item()) <= 1.5
    assert abs(xs.max().item() + 1 - box[2].item()) <= 1.5
    assert abs(ys.min().item() - box[1].item()) <= 1.5


@needs_real
def test_v1_list_info_file_is_named():
    root = osp.join(REAL, 'tests')
    with pytest.raises(ValueError, match=r'kitti_infos_mono3d\.pkl.*v1'):
        build('kitti_infos_mono3d.pkl', root)


# --------------------------------------------------- synthetic info files
def kitti_instance(bbox, label, bbox_3d):
    return dict(bbox=bbox, bbox_label=label, bbox_3d=bbox_3d,
                bbox_label_3d=label, depth=bbox_3d[2],
                center_2d=[bbox[0] + 1.0, bbox[1] + 1.0], num_lidar_pts=10,
                difficulty=0, truncated=0.0, occluded=0, alpha=0.1,
                score=0.0, index=0, group_id=0)


def make_info(idx, instances, w=40, h=30):
    P2 = [[50.0, 0.0, 20.0, 4.5], [0.0, 50.0, 15.0, 0.0],
          [0.0, 0.0, 1.0, 0.005], [0.0, 0.0, 0.0, 1.0]]
    projected = [dict(copy.deepcopy(i), bbox=[0.5, 0.5, 9.5, 9.5])
                 for i in instances if i['bbox_label'] >= 0]
    return dict(
        sample_idx=idx,
        images=dict(CAM2=dict(img_path=f'{idx:06d}.png', cam2img=P2,
                              lidar2cam=np.eye(4).tolist(), height=h,
                              width=w)),
        lidar_points=dict(lidar_path=f'{idx:06d}.bin', num_pts_feats=4),
        instances=instances,
        cam_instances=dict(CAM2=projected))


@pytest.fixture
def synth_root(tmp_path):
    img_dir = tmp_path / 'training' / 'image_2'
    img_dir.mkdir(parents=True)
    data_list = [
        make_info(0, [
            kitti_instance([2.0, 3.0, 12.0, 20.0], 2,
                           [1.0, 1.5, 10.0, 4.0, 1.5, 1.6, 0.2]),  # Car
            kitti_instance([0.0, 0.0, 39.0, 29.0], -1,
                           [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]),  # DontCare
            kitti_instance([5.0, 5.0, 9.0, 9.0], 3,
                           [2.0, 1.5, 20.0, 4.5, 2.0, 1.8, 0.0]),  # Van
            kitti_instance([20.0, 4.0, 26.0, 25.0], 0,
                           [-1.0, 1.6, 8.0, 0.8, 1.7, 0.6, 0.0]),  # Ped
        ]),
        make_info(1, [
            kitti_instance([1.0, 1.0, 5.0, 5.0], -1,
                           [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
        ]),
    ]
    for info in data_list:
        cv2.imwrite(str(img_dir / info['images']['CAM2']['img_path']),
                    np.full((30, 40, 3), 80, np.uint8))
    metainfo = dict(
        dataset='kitti', info_version='1.1',
        categories={c: i for i, c in enumerate(KittiDataset.METAINFO[
            'classes'])})
    with open(tmp_path / 'infos.pkl', 'wb') as f:
        pickle.dump(dict(metainfo=metainfo, data_list=data_list), f)
    # mmdet3d 1.4's KittiDataset raises IndexError on image-based samples
    # without instances (sample 1 in test mode), so compare on sample 0 only
    with open(tmp_path / 'infos_nonempty.pkl', 'wb') as f:
        pickle.dump(dict(metainfo=metainfo, data_list=data_list[:1]), f)
    return str(tmp_path)


def test_label2_boxes_not_cam_instances(synth_root):
    ds = build('infos.pkl', synth_root, filter_empty_gt=False)
    ann = ds.get_data_info(0)['ann_info']
    # DontCare and Van (not in the config's classes) removed; label_2 boxes,
    # never the projected cam_instances boxes ([0.5, 0.5, 9.5, 9.5])
    np.testing.assert_array_equal(
        ann['gt_bboxes'], [[2, 3, 12, 20], [20, 4, 26, 25]])
    assert ann['gt_bboxes'].dtype == np.float32
    assert ann['gt_bboxes_labels'].tolist() == [2, 0]
    assert ann['gt_bboxes_labels'].dtype == np.int64
    assert ds.get_data_info(1)['ann_info']['gt_bboxes'].shape == (0, 4)
    assert ds.get_cat_ids(0) == {0, 2}
    assert ds.num_ins_per_cat == [1, 0, 1]
    packed = ds.prepare_data(0)['data_samples']
    assert packed.gt_instances.bboxes.tolist() == [[2, 3, 12, 20],
                                                   [20, 4, 26, 25]]
    assert len(packed.gt_instances_3d.keys()) == 0


def test_filter_empty_gt_counts_2d_boxes(synth_root):
    ds = build('infos.pkl', synth_root)
    assert ds.prepare_data(0) is not None
    assert ds.prepare_data(1) is None  # DontCare only
    ds = build('infos.pkl', synth_root, filter_empty_gt=False)
    empty = ds.prepare_data(1)['data_samples'].gt_instances
    assert len(empty.bboxes) == 0


def test_test_mode_and_weak_false_are_kitti(synth_root):
    pipeline = [dict(type='LoadImageFromFileMono3D'),
                dict(type='Pack3DDetInputs', keys=['img'])]
    kw = dict(pipeline=pipeline, test_mode=True)
    weak = build('infos_nonempty.pkl', synth_root, **kw).get_data_info(0)
    ref = build('infos_nonempty.pkl', synth_root, cls=KittiDataset,
                **kw).get_data_info(0)
    assert sorted(weak['eval_ann_info']) == sorted(ref['eval_ann_info'])
    assert 'gt_bboxes_3d' in weak['eval_ann_info']
    for key, value in ref['eval_ann_info'].items():
        if key == 'gt_bboxes_3d':
            torch.testing.assert_close(weak['eval_ann_info'][key].tensor,
                                       value.tensor)
        elif key != 'instances':
            np.testing.assert_array_equal(weak['eval_ann_info'][key], value)

    full = [dict(type='LoadImageFromFileMono3D'),
            dict(type='LoadAnnotations3D', with_bbox=True, with_label=True,
                 with_bbox_3d=True, with_label_3d=True, with_bbox_depth=True),
            dict(type='Pack3DDetInputs',
                 keys=['img', 'gt_bboxes_3d', 'gt_labels_3d'])]
    weak = build('infos_nonempty.pkl', synth_root, pipeline=full, weak=False)
    ref = build('infos_nonempty.pkl', synth_root, pipeline=full,
                cls=KittiDataset)
    a, b = weak.get_data_info(0)['ann_info'], ref.get_data_info(0)['ann_info']
    assert sorted(a) == sorted(b) and 'gt_bboxes_3d' in a
    torch.testing.assert_close(a['gt_bboxes_3d'].tensor,
                               b['gt_bboxes_3d'].tensor)
    torch.testing.assert_close(
        weak[0]['data_samples'].gt_instances_3d.bboxes_3d.tensor,
        ref[0]['data_samples'].gt_instances_3d.bboxes_3d.tensor)


def test_test_mode_sample_without_instances(synth_root):
    pipeline = [dict(type='LoadImageFromFileMono3D'),
                dict(type='Pack3DDetInputs', keys=['img'])]
    ds = build('infos.pkl', synth_root, pipeline=pipeline, test_mode=True)
    ann = ds.get_data_info(1)['eval_ann_info']
    assert len(ann['gt_bboxes_3d']) == 0
    assert ann['gt_bboxes'].shape == (0, 4)
    assert ann['gt_bboxes_labels'].shape == ann['gt_labels_3d'].shape == (0, )
    assert len(ds.get_data_info(0)['eval_ann_info']['gt_bboxes_3d']) == 2


@pytest.mark.parametrize('cfg,match', [
    (dict(type='LoadAnnotations3D', with_bbox=True, with_label=True),
     'with_bbox_3d=True, with_label_3d=True'),
    (dict(type='LoadAnnotations3D', with_bbox=True, with_bbox_3d=False,
          with_label_3d=False, with_bbox_depth=True), 'with_bbox_depth'),
    (dict(type='LoadPointsFromFile', coord_type='LIDAR'), 'LiDAR'),
])
def test_pipeline_guard(synth_root, cfg, match):
    pipeline = [dict(type='LoadImageFromFileMono3D'), cfg,
                dict(type='Pack3DDetInputs', keys=['img'])]
    with pytest.raises(ValueError, match=match):
        build('infos.pkl', synth_root, pipeline=pipeline)
    # val/test keep 3D labels: no guard
    build('infos.pkl', synth_root, pipeline=pipeline, test_mode=True)


def test_lidar_modality_refused(synth_root):
    with pytest.raises(ValueError, match='LiDAR'):
        build('infos.pkl', synth_root,
              modality=dict(use_lidar=True, use_camera=True))


class InjectDepths:
    """A pipeline step that smuggles a 3D field into the sample."""

    def __call__(self, results):
        results['depths'] = np.ones(len(results['gt_bboxes']), np.float32)
        return results


def test_packed_3d_field_is_refused(synth_root):
    pipeline = WEAK_PIPELINE[:2] + [InjectDepths(), WEAK_PIPELINE[2]]
    ds = build('infos.pkl', synth_root, pipeline=pipeline)
    with pytest.raises(RuntimeError, match=r'sample_idx=0.*depths'):
        ds.prepare_data(0)


def test_ann_info_guard_names_sample():
    info = dict(sample_idx=7, instances=[dict(bbox=[0, 0, 1, 1],
                                              bbox_label=0)])
    with pytest.raises(RuntimeError, match=r'sample_idx=7.*gt_bboxes_3d'):
        WeakKittiDataset._check_weak_ann(
            dict(gt_bboxes=np.zeros((1, 4)), gt_bboxes_labels=np.zeros(1),
                 gt_bboxes_3d=np.zeros((1, 7))), info)
    info['instances'][0]['depth'] = 3.0
    with pytest.raises(RuntimeError, match=r"sample_idx=7.*'depth'"):
        WeakKittiDataset._check_weak_ann(
            dict(gt_bboxes=np.zeros((1, 4)), gt_bboxes_labels=np.zeros(1)),
            info)


def test_info_file_errors(tmp_path):
    with open(tmp_path / 'nometa.pkl', 'wb') as f:
        pickle.dump(dict(data_list=[]), f)
    with pytest.raises(ValueError, match=r'nometa\.pkl.*metainfo'):
        build('nometa.pkl', str(tmp_path))
    with open(tmp_path / 'v1.pkl', 'wb') as f:
        pickle.dump([dict(image={}, annos={})], f)
    with pytest.raises(ValueError, match=r'v1\.pkl.*list-format'):
        build('v1.pkl', str(tmp_path))
    with open(tmp_path / 'old_entries.pkl', 'wb') as f:
        pickle.dump(dict(metainfo={}, data_list=[dict(image={})]), f)
    with pytest.raises(ValueError, match=r'old_entries\.pkl'):
        build('old_entries.pkl', str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r'absent\.pkl'):
        build('absent.pkl', str(tmp_path))
