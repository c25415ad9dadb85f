"""Importing mmdet3d_skd (what custom_imports does) registers every module of the package."""
import subprocess
import sys

EXPECTED = {
    'model': ['SKDWM3D', 'SKDHead', 'DepthFusionNeck', 'WeakMono3DLoss',
              'UncertaintyDistillLoss', 'SKDDataPreprocessor'],
    'transform': ['LoadDepthMap', 'DepthRandomFlip3D', 'DepthAffineResize', 'DepthResize3D',
                  'PackSKDInputs'],
    'dataset': ['WeakKittiDataset'],
    'metric': ['CPUKittiMetric'],
    'hook': ['GradModulationHook', 'NonFiniteLossHook'],
    'visualizer': ['SKDLocalVisualizer'],
}


def test_import_registers_every_module_into_mmdet3d_registries():
    """In a fresh interpreter: nothing is registered before the import, everything after."""
    code = '''
import json
from mmdet3d import registry as r
regs = dict(model=r.MODELS, transform=r.TRANSFORMS, dataset=r.DATASETS, metric=r.METRICS,
            hook=r.HOOKS, visualizer=r.VISUALIZERS)
names = %r
before = {k: [n for n in v if n in regs[k].module_dict] for k, v in names.items()}
import mmdet3d_skd
after = {k: sorted(n for n, c in regs[k].module_dict.items()
                   if c.__module__.startswith('mmdet3d_skd')) for k in names}
print(json.dumps(dict(before=before, after=after)))
''' % EXPECTED
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    import json
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert all(not v for v in res['before'].values()), res['before']
    for kind, names in EXPECTED.items():
        assert set(names) <= set(res['after'][kind]), (kind, res['after'][kind])
