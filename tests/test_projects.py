"""projects/: SMOKESKDHead (SMOKE's head trained weakly) on hand-made boxes, and every project
config built and trained for a few iterations with mmengine's runner on generated data."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmengine.structures import InstanceData

import mmdet3d
from mmdet3d.registry import MODELS, TRANSFORMS
from mmdet3d.structures import Det3DDataSample
from mmdet3d_skd.models.geometry import project_points
from mmdet3d_skd.models.pseudo_points import batch_pseudo_points
from projects.smoke_skd.smoke_skd import SMOKESKDHead  # noqa: F401  (registers it)
from tests.conftest import REPO, small_synth_cfg

SMOKE_KITTI = 'projects/smoke_skd/configs/smoke_skd_dla34_kitti.py'
SMOKE_SYNTH = 'projects/smoke_skd/configs/smoke_skd_r18_synth.py'
FULL_KITTI = 'projects/skd_full_distill/configs/skd_full_distill_dla34_kitti.py'
FULL_SYNTH = 'projects/skd_full_distill/configs/skd_full_distill_r18_synth.py'

# a KITTI-like input-image projection with its translation column, 192x64 input, stride 4
K = torch.tensor([[180.4, 0., 96.0, 11.2], [0., 180.4, 30.0, 0.05], [0., 0., 1., 0.003],
                  [0., 0., 0., 1.]])
H, W, STRIDE = 64, 192, 4.0
CAR = 2


def smoke_head(**overrides) -> SMOKESKDHead:
    cfg = Config.fromfile(str(REPO / SMOKE_SYNTH)).model.bbox_head
    cfg.update(overrides)
    torch.manual_seed(0)
    return MODELS.build(cfg)


def raw_for_box(head, center, dims, yaw, label=CAR):
    """SMOKE's raw outputs that decode to the gravity centre/dims/yaw, and the cell."""
    uv, s = project_points(center[None], K)  # s: projective depth, what SMOKE regresses
    cell = torch.floor(uv[0] / STRIDE)
    b0, b1 = head.bbox_coder.base_depth
    alpha = yaw - math.atan(center[0] / center[2])  # SMOKECoder's ray angle
    theta = alpha + math.pi / 2  # SMOKECoder: alpha = atan2(v0, v1) - pi/2
    raw = dict(depth=(s - b0) / b1, offset=uv / STRIDE - cell,
               dims=torch.log(dims / head.dims_prior[label])[None],
               orient=torch.tensor([[math.sin(theta), math.cos(theta)]]),
               depth_logvar=torch.zeros(1, 1), bbox2d=torch.ones(1, 4))
    return {k: v.reshape(1, -1).float() for k, v in raw.items()}, cell.long()


def test_decode_inverts_the_projection_through_smoke_coder():
    head = smoke_head()
    center, dims, yaw = torch.tensor([2.0, 1.0, 15.0]), torch.tensor([4.2, 1.4, 1.7]), 0.5
    raw, cell = raw_for_box(head, center, dims, yaw)
    dec = head.decode(raw, cell[None], torch.tensor([CAR]), K[None], STRIDE)
    assert torch.allclose(dec['center'][0], center, atol=1e-4)
    assert torch.allclose(dec['dims'][0], dims, atol=1e-5)
    assert dec['yaw'][0].item() == pytest.approx(yaw, abs=1e-5)
    assert dec['depth'][0].item() == pytest.approx(15.003, abs=1e-4)  # projective depth
    # 2D box: one cell on each side of the cell centre
    c = (cell.float() + 0.5) * STRIDE
    assert torch.allclose(dec['box2d'][0], torch.cat([c - STRIDE, c + STRIDE]))


def test_input_frame_decoding_equals_smoke_original_frame_with_trans_mat():
    """(cam2img = S T K, diag(1/stride)) decodes as SMOKE's (K, trans_mat T)."""
    head = smoke_head()
    k_orig = torch.tensor([[721.5, 0., 609.6, 44.9], [0., 721.5, 172.9, 0.2],
                           [0., 0., 1., 0.003], [0., 0., 0., 1.]])
    # original image 1242x375 -> feature grid: scale 1/6.5 and a shift (RandomShiftScale-like)
    trans = torch.tensor([[1 / 6.5, 0., -3.0], [0., 1 / 6.5, 2.0], [0., 0., 1.]])
    k_in = torch.eye(4)
    k_in[:3] = torch.diag(torch.tensor([STRIDE, STRIDE, 1.0])) @ trans @ k_orig[:3]
    torch.manual_seed(3)
    n = 5
    raw = dict(depth=torch.randn(n, 1), offset=torch.rand(n, 2), dims=torch.rand(n, 3) - 0.5,
               orient=torch.nn.functional.normalize(torch.randn(n, 2)),
               depth_logvar=torch.zeros(n, 1), bbox2d=torch.ones(n, 4))
    cells = torch.randint(0, 40, (n, 2))
    labels = torch.randint(0, 3, (n, ))
    ours = head.decode(raw, cells, labels, k_in.expand(n, 4, 4), STRIDE)
    reg = torch.cat([raw['depth'], raw['offset'], raw['dims'], raw['orient']], 1)
    loc, dims, yaw = head.bbox_coder.decode(reg, cells.float(), labels, k_orig.expand(n, 4, 4),
                                            trans.expand(n, 3, 3))
    assert torch.allclose(ours['center'], loc, atol=1e-3)
    assert torch.allclose(ours['dims'], dims)
    assert torch.allclose(ours['yaw'], yaw[:, 0], atol=1e-5)


def sample(boxes=((60., 28., 100., 47.), ), labels=(CAR, ), **meta):
    s = Det3DDataSample(metainfo=dict(cam2img=K.tolist(), img_path='synthetic.png', **meta))
    s.gt_instances = InstanceData(bboxes=torch.tensor(boxes).reshape(-1, 4),
                                  labels=torch.tensor(labels, dtype=torch.long))
    s.gt_instances_3d = InstanceData()
    return s


def test_cam2img_left_in_smoke_frame_is_refused():
    head = smoke_head()
    bad = sample(trans_mat=np.eye(3))  # AffineResize / update_cam2img=False
    with pytest.raises(ValueError, match='update_cam2img=True'):
        head.get_targets([bad], (H // 4, W // 4), (H, W), 'cpu')
    ok = sample(trans_mat=np.eye(3), ori_cam2img=K.tolist())  # DepthAffineResize default
    assert len(head.get_targets([ok], (H // 4, W // 4), (H, W), 'cpu').labels) == 1


def test_losses_finite_with_and_without_instances():
    head = smoke_head()
    feat = torch.randn(2, 64, H // 4, W // 4, requires_grad=True)
    depth = torch.zeros(2, 1, H, W)
    depth[:, :, 28:47, 60:100] = 12.0  # a surface inside the box
    for samples in ([sample(), sample()], [sample(boxes=(), labels=())] * 2):
        targets = head.get_targets(samples, (H // 4, W // 4), (H, W), 'cpu')
        pseudo = batch_pseudo_points(depth, targets, head.dims_prior)
        losses = head.loss_by_feat(head(feat), targets, pseudo)
        assert set(losses) == {'loss_heatmap', 'loss_bbox2d', 'loss_giou2d', 'loss_depth',
                               'loss_align', 'loss_proj', 'loss_dim', 'loss_orient'}
        total = sum(losses.values())
        assert torch.isfinite(total)
        total.backward()
        assert torch.isfinite(feat.grad).all()


def test_predict_decodes_the_heatmap_peak():
    head = smoke_head()
    center, dims, yaw = torch.tensor([-1.5, 1.2, 12.0]), torch.tensor([3.9, 1.5, 1.6]), -0.3
    raw, cell = raw_for_box(head, center, dims, yaw)
    h, w = H // 4, W // 4
    preds = {name: torch.zeros(1, v.shape[1], h, w) for name, v in raw.items()}
    for name, v in raw.items():
        preds[name][0, :, cell[1], cell[0]] = v[0]
    preds['heatmap'] = torch.zeros(1, 3, h, w)
    preds['heatmap'][0, CAR, cell[1], cell[0]] = 0.9
    res3d, res2d = head.predict_by_feat(preds, [sample()], (H, W))
    assert res3d[0].labels_3d.tolist() == [CAR] and res3d[0].scores_3d.tolist() == [
        pytest.approx(0.9)]
    box = res3d[0].bboxes_3d.tensor[0]
    bottom = center + torch.tensor([0., dims[1] / 2, 0.])
    assert torch.allclose(box[:3], bottom, atol=1e-4)
    assert torch.allclose(box[3:6], dims, atol=1e-5)
    assert box[6].item() == pytest.approx(yaw, abs=1e-5)
    assert len(res2d[0].bboxes) == 1


def test_smoke_checkpoint_loads_into_the_first_regression_group():
    """A SMOKE checkpoint's head fits SMOKESKDHead but for the extra regression group."""
    base = Path(mmdet3d.__file__).parent / '.mim/configs/_base_/models/smoke.py'
    smoke = MODELS.build(Config.fromfile(str(base)).model.bbox_head)
    head = MODELS.build(Config.fromfile(str(REPO / SMOKE_KITTI)).model.bbox_head)
    missing, unexpected = head.load_state_dict(smoke.state_dict(), strict=False)
    assert unexpected == []
    assert missing and all(k.startswith(('conv_reg_prevs.1.', 'conv_regs.1.')) for k in missing)


@pytest.mark.parametrize('config', [SMOKE_KITTI, FULL_KITTI])
def test_kitti_configs_build(config):
    cfg = Config.fromfile(str(REPO / config))
    model = MODELS.build(cfg.model)
    assert type(model).__name__ == 'SKDWM3D' and model.with_teacher
    for pipeline in (cfg.train_dataloader.dataset.pipeline, cfg.test_pipeline):
        for t in pipeline:
            TRANSFORMS.build(t)
    if config == SMOKE_KITTI:
        assert type(model.bbox_head).__name__ == 'SMOKESKDHead'
        assert type(model.backbone).__name__ == 'DLANet'
        assert model.bbox_head.conv_regs[0].out_channels == 8
    else:
        assert model.bbox_head.supervision == model.teacher_head.supervision == 'full'


def scalars(work_dir):
    rows = []
    for f in sorted(work_dir.glob('*/vis_data/scalars.json')):
        rows += [json.loads(line) for line in f.read_text().splitlines()]
    return [r for r in rows if 'student.loss_heatmap' in r]


def every_parameter_gets_a_gradient(runner):
    """One more step by hand: DDP with find_unused_parameters=False needs this."""
    model = runner.model
    data = model.data_preprocessor(next(iter(runner.train_dataloader)), True)
    loss, _ = model.parse_losses(model(**data, mode='loss'))
    model.zero_grad()
    loss.backward()
    return [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]


def test_smoke_skd_trains_weakly_and_validates(synth_data, tmp_path):
    cfg = small_synth_cfg(synth_data, tmp_path / 'smoke', max_iters=3, config=SMOKE_SYNTH)
    cfg.randomness = dict(seed=0)
    runner = Runner.from_cfg(cfg)
    runner.train()
    rows = scalars(tmp_path / 'smoke')
    assert len(rows) == 3
    for branch in ('student', 'teacher'):
        for term in ('loss_heatmap', 'loss_giou2d', 'loss_depth', 'loss_align', 'loss_proj'):
            assert all(np.isfinite(r[f'{branch}.{term}']) for r in rows)
    assert {'distill.loss_depth', 'distill.loss_feature', 'k_teacher', 'rho'} <= set(rows[-1])
    log = next((tmp_path / 'smoke').glob('*/*.log')).read_text()
    assert 'Car AP40@0.70, 0.70, 0.70' in log  # SMOKESKDHead's predictions reach the metric
    ckpt = torch.load(tmp_path / 'smoke' / 'iter_3.pth', map_location='cpu',
                      weights_only=False)
    assert ckpt['state_dict']['bbox_head.conv_regs.0.weight'].shape[0] == 8  # SMOKE's layout
    assert 'grad_modulation_hook' in ckpt
    assert every_parameter_gets_a_gradient(runner) == []


def test_full_supervision_distillation_trains(synth_data, tmp_path):
    cfg = small_synth_cfg(synth_data, tmp_path / 'full', max_iters=3, config=FULL_SYNTH)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None  # same inference as SKDWM3D
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.randomness = dict(seed=0)
    runner = Runner.from_cfg(cfg)
    runner.train()
    rows = scalars(tmp_path / 'full')
    assert len(rows) == 3
    for branch in ('student', 'teacher'):
        for term in ('loss_depth', 'loss_offset', 'loss_dims', 'loss_orient'):
            assert all(np.isfinite(r[f'{branch}.{term}']) for r in rows)
        assert f'{branch}.loss_align' not in rows[-1]  # no weak term in full supervision
    assert {'distill.loss_depth', 'distill.loss_feature', 'k_distill'} <= set(rows[-1])
    assert every_parameter_gets_a_gradient(runner) == []


def test_smoke_skd_head_is_the_projects_not_the_packages():
    """SMOKESKDHead is registered by the project's code (its configs' custom_imports), not by
    ``import mmdet3d_skd``."""
    code = ('from mmdet3d.registry import MODELS\n'
            'import mmdet3d_skd\n'
            "print('SMOKESKDHead' in MODELS.module_dict)\n"
            'import projects.smoke_skd.smoke_skd\n'
            "print(MODELS.module_dict['SMOKESKDHead'].__module__)\n")
    out = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ['False', 'projects.smoke_skd.smoke_skd.smoke_skd_head']
