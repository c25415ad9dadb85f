"""SKDDataPreprocessor: depth maps padded and stacked next to the images."""
import pytest
import torch

from mmdet3d.structures import Det3DDataSample
from mmdet3d_skd.models.data_preprocessor import SKDDataPreprocessor


def batch(sizes, with_depth=True):
    imgs, depths, samples = [], [], []
    for i, (h, w) in enumerate(sizes):
        imgs.append(torch.full((3, h, w), 100.0 + i))
        d = torch.arange(h * w, dtype=torch.float32).reshape(1, h, w) + 1
        depths.append(d)
        samples.append(Det3DDataSample(metainfo=dict(img_path=f'{i}.png')))
    inputs = dict(img=imgs)
    if with_depth:
        inputs['depth_map'] = depths
    return dict(inputs=inputs, data_samples=samples), depths


def test_pad_and_stack_like_images():
    pre = SKDDataPreprocessor(mean=[100.0] * 3, std=[2.0] * 3,
                              pad_size_divisor=8)
    data, depths = batch([(10, 12), (7, 17)])
    out = pre(data, training=True)
    imgs, dm = out['inputs']['imgs'], out['inputs']['depth_maps']
    assert tuple(imgs.shape) == (2, 3, 16, 24)
    assert tuple(dm.shape) == (2, 1, 16, 24) and dm.dtype == torch.float32
    # values untouched (no normalisation), padding at right/bottom is 0
    assert torch.equal(dm[0, :, :10, :12], depths[0])
    assert torch.equal(dm[1, :, :7, :17], depths[1])
    assert (dm[0, :, 10:] == 0).all() and (dm[0, :, :, 12:] == 0).all()
    assert (dm[1, :, 7:] == 0).all() and (dm[1, :, :, 17:] == 0).all()
    # images are normalised as usual
    assert imgs[1, 0, 0, 0].item() == pytest.approx((101.0 - 100.0) / 2.0)
    assert out['data_samples'][0].batch_input_shape == (16, 24)


def test_no_depth_no_key():
    pre = SKDDataPreprocessor(pad_size_divisor=4)
    data, _ = batch([(5, 6)], with_depth=False)
    out = pre(data)
    assert 'depth_maps' not in out['inputs']
    assert tuple(out['inputs']['imgs'].shape) == (1, 3, 8, 8)


def test_depth_of_wrong_size_is_refused():
    pre = SKDDataPreprocessor()
    data, _ = batch([(6, 6), (6, 6)])
    data['inputs']['depth_map'][1] = torch.ones(1, 5, 6)
    with pytest.raises(ValueError, match=r'1\.png'):
        pre(data)


def test_stack_without_images_rounds_to_divisor():
    pre = SKDDataPreprocessor(pad_size_divisor=32)
    out = pre.stack_depth_maps([torch.ones(1, 33, 40), torch.ones(33, 10)])
    assert tuple(out.shape) == (2, 1, 64, 64)
    assert out.sum().item() == 33 * 40 + 33 * 10
