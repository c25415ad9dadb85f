"""SKDWM3D: named losses, the weak-supervision guard, targeted gradient scaling, and
student-only inference without a depth map."""
import pytest
import torch
from mmengine.config import Config
from mmengine.structures import InstanceData

from mmdet3d.registry import MODELS
from mmdet3d.structures import CameraInstance3DBoxes, Det3DDataSample
from tests.conftest import REPO

K = [[360.8, 0., 300.0, 22.4], [0., 360.8, 90.0, 0.1], [0., 0., 1., 0.003], [0., 0., 0., 1.]]
H, W = 64, 192


def build(**overrides):
    import mmdet3d_skd  # noqa: F401
    torch.manual_seed(0)
    cfg = Config.fromfile(str(REPO / 'configs/skd_wm3d_synth.py')).model
    cfg.update(overrides)
    model = MODELS.build(cfg)
    model.train()
    return model


def ground_depth(b=2):
    """A flat ground 1.65 m below the camera (rows below the horizon), the rest invalid."""
    v = torch.arange(H, dtype=torch.float32)[:, None].expand(H, W)
    depth = torch.where(v > 46, 360.8 * 1.65 / (v - 45).clamp(min=1), torch.zeros(()))
    depth[30:46, 60:100] = 12.0  # an object's surface inside the first box
    return depth[None, None].repeat(b, 1, 1, 1)


def samples(b=2, with_3d=False):
    out = []
    for _ in range(b):
        s = Det3DDataSample(metainfo=dict(cam2img=K, img_path='synthetic.png',
                                          batch_input_shape=(H, W)))
        gt = InstanceData()
        gt.bboxes = torch.tensor([[60., 28., 100., 47.], [120., 30., 140., 50.]])
        gt.labels = torch.tensor([2, 0])
        s.gt_instances = gt
        gt3d = InstanceData()
        if with_3d:
            gt3d.bboxes_3d = CameraInstance3DBoxes(torch.zeros(2, 7))
        s.gt_instances_3d = gt3d
        out.append(s)
    return out


def inputs(b=2, depth=True):
    torch.manual_seed(1)
    batch = {'imgs': torch.randn(b, 3, H, W)}
    if depth:
        batch['depth_maps'] = ground_depth(b)
    return batch


def test_loss_returns_named_teacher_student_and_distill_entries():
    losses = build().loss(inputs(), samples())
    names = set(losses)
    assert {'student.loss_heatmap', 'teacher.loss_heatmap', 'student.loss_depth',
            'teacher.loss_align', 'distill.loss_depth', 'distill.loss_feature',
            'weak_total_student', 'weak_total_teacher'} <= names
    for name, value in losses.items():
        assert torch.isfinite(value).all(), name


def test_weak_mode_refuses_3d_targets():
    with pytest.raises(RuntimeError, match="bboxes_3d.*reached the loss"):
        build().loss(inputs(), samples(with_3d=True))


def test_training_without_depth_map_is_a_clear_error():
    with pytest.raises(ValueError, match='no depth map'):
        build().loss(inputs(depth=False), samples())


def encoder_and_head_grads(model, **k):
    model.set_transfer_coefficients(**k)
    model.zero_grad()
    losses = model.loss(inputs(), samples())
    sum(v for n, v in losses.items() if 'loss' in n).backward()
    enc = next(model.backbone.parameters()).grad.clone()
    head = model.bbox_head.reg_heads['depth'].weight.grad.clone()
    teacher = model.teacher_head.reg_heads['depth'].weight.grad.clone()
    return enc, head, teacher


def test_transfer_coefficients_scale_only_the_shared_encoder():
    """k = 0 for every branch: no gradient reaches the encoder, each branch keeps its own."""
    model = build()
    enc1, head1, tea1 = encoder_and_head_grads(model, teacher=1.0, student=1.0, distill=1.0)
    enc0, head0, tea0 = encoder_and_head_grads(model, teacher=0.0, student=0.0, distill=0.0)
    assert enc1.abs().sum() > 0 and enc0.abs().sum() == 0
    assert torch.allclose(head0, head1, rtol=1e-4, atol=1e-7)
    assert torch.allclose(tea0, tea1, rtol=1e-4, atol=1e-7)
    # linear in the coefficients: all k = 0.5 halves the encoder's gradient
    enc_half, _, _ = encoder_and_head_grads(model, teacher=0.5, student=0.5, distill=0.5)
    assert torch.allclose(enc_half, enc1 / 2, rtol=1e-3, atol=1e-5 * enc1.abs().max())


def test_predict_needs_no_depth_and_never_runs_the_teacher():
    model = build().eval()
    fired = []
    for name in ('teacher_neck', 'teacher_head', 'adapter'):
        getattr(model, name).register_forward_hook(lambda *a, n=name: fired.append(n))
    with torch.no_grad():
        out = model.predict(inputs(depth=False), samples())
    assert fired == []
    assert isinstance(out[0].pred_instances_3d.bboxes_3d, CameraInstance3DBoxes)
    assert len(out[0].pred_instances.bboxes) == len(out[0].pred_instances_3d.scores_3d)


def test_teacher_branch_at_test_time_uses_the_depth_map():
    model = build(test_cfg=dict(branch='teacher')).eval()
    with torch.no_grad():
        out = model.predict(inputs(depth=True), samples())
    assert isinstance(out[0].pred_instances_3d.bboxes_3d, CameraInstance3DBoxes)
    with pytest.raises(ValueError, match='no depth map'):
        model.predict(inputs(depth=False), samples())


def test_teacher_with_map_depth_trains_and_tests_from_the_depth_map():
    """teacher_head=dict(depth_mode='map'): the teacher head gets the depth map in training
    and at test time (teacher branch); the student's inference still needs none."""
    import mmdet3d_skd  # noqa: F401
    torch.manual_seed(0)
    cfg = Config.fromfile(str(REPO / 'configs/skd_wm3d_synth.py'))
    cfg.merge_from_dict({'model.teacher_head.depth_mode': 'map'})
    model = MODELS.build(cfg.model).train()
    losses = model.loss(inputs(), samples())
    assert all(torch.isfinite(v).all() for v in losses.values())
    model.eval()
    with torch.no_grad():
        assert len(model.predict(inputs(depth=False), samples())) == 2
    model.test_branch = 'teacher'
    with torch.no_grad():
        out = model.predict(inputs(depth=True), samples())
    assert isinstance(out[0].pred_instances_3d.bboxes_3d, CameraInstance3DBoxes)


def test_student_alone_is_the_plain_detector():
    model = build(teacher_neck=None, teacher_head=None, distill_loss=None,
                  feature_distill_loss=None)
    losses = model.loss(inputs(), samples())
    assert not any(n.startswith(('teacher.', 'distill.')) for n in losses)
    assert 'student.loss_align' in losses


def test_2d_predictions_are_mapped_back_to_the_original_image():
    """cam2img = A @ ori_cam2img (scale 0.5, shift (10, -4)): boxes go back through A^-1."""
    from mmdet3d_skd.models.detector import boxes_to_original_image
    k0 = torch.tensor(K)
    a = torch.tensor([[0.5, 0., 10., 0.], [0., 0.5, -4., 0.], [0., 0., 1., 0.], [0., 0., 0., 1.]])
    meta = dict(cam2img=(a @ k0).tolist(), ori_cam2img=K)
    boxes = torch.tensor([[10., 6., 60., 36.]])
    back = boxes_to_original_image(boxes, meta)
    assert torch.allclose(back, torch.tensor([[0., 20., 100., 80.]]), atol=1e-4)
    assert torch.equal(boxes_to_original_image(boxes, dict(cam2img=K)), boxes)


def test_2d_pretraining_learns_only_2d_and_reads_nothing_3d():
    """supervision='2d' (the shared pretraining): heatmap and 2D box losses only, no depth map
    needed, and the weak guard refuses 3D targets as in weak mode."""
    cfg = Config.fromfile(str(REPO / 'configs/benchmarks/pretrain_2d_synth.py')).model
    import mmdet3d_skd  # noqa: F401
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.train()
    losses = model.loss(inputs(depth=False), samples())
    assert {k for k in losses if 'loss' in k} == {
        'student.loss_heatmap', 'student.loss_bbox2d', 'student.loss_giou2d'}
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert model.backbone.conv1.weight.grad.abs().sum() > 0
    with pytest.raises(RuntimeError, match="bboxes_3d.*reached the loss"):
        model.loss(inputs(depth=False), samples(with_3d=True))
