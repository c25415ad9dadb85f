"""The benchmark script's quick mode: every path runs (weak training, the teacher at test
time, full supervision, the speed probes) and the report is written. Its numbers mean
nothing; the real figures come from ``tools/benchmarks/run_benchmarks.py`` (docs/benchmarks.md)."""
import sys

from tests.conftest import REPO

sys.path.insert(0, str(REPO / 'tools' / 'benchmarks'))
import run_benchmarks  # noqa: E402


def test_quick_benchmark_writes_the_report(synth_data, tmp_path):
    """Run 5 needs run 1's checkpoint: both train/test paths and the speed probes run.
    (Full supervision training is exercised by tests/test_projects.py.)"""
    out = tmp_path / 'benchmarks.md'
    run_benchmarks.main(['--quick', '--runs', 'teacher', '--data', str(synth_data),
                         '--work-dir', str(tmp_path / 'work'), '--out', str(out)])
    text = out.read_text()
    assert 'Quick mode' in text
    for title in ('1. SKD-WM3D', '5. Teacher at test time'):
        assert title in text
    assert 'inference latency' in text and 'training time per iteration' in text
    assert (tmp_path / 'work' / 'skd' / 'iter_2.pth').exists()


def test_inference_costs_equal_a_plain_detector():
    """What runs at inference in SKD-WM3D is the plain student: same parameters and FLOPs."""
    speed = run_benchmarks.inference_probe(reps=1)
    assert speed['skd']['params'] == speed['full']['params']
    assert speed['skd']['flops'] == speed['full']['flops']
