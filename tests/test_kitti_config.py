"""configs/skd_wm3d_kitti.py (the paper's setting, DLA-34, meant for GPUs) builds and trains
two iterations on the CPU on the synthetic data, with a data-root override."""
from mmengine.runner import Runner

from tests.conftest import small_synth_cfg


def test_kitti_config_trains_two_iterations_on_cpu(synth_data, tmp_path):
    cfg = small_synth_cfg(synth_data, tmp_path / 'kitti', max_iters=2, batch_size=1,
                          input_size=(128, 64), config='configs/skd_wm3d_kitti.py')
    # the config's epoch schedule and the DLA-34 ImageNet weights (no download here)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=100)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=2, by_epoch=False)
    cfg.log_processor = dict(by_epoch=False)
    cfg.model.backbone.init_cfg = None
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    assert cfg.model.backbone.type == 'DLANet' and cfg.model.neck.type == 'DLANeck'
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2
    assert (tmp_path / 'kitti' / 'iter_2.pth').exists()
