"""benchmarks/compare.py and benchmarks/gpu.py: their command lines, tables and CPU paths."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import compare  # noqa: E402
import gpu  # noqa: E402


def run_script(name, *args, env=None):
    return subprocess.run([sys.executable, str(BENCHMARKS / name), *args], capture_output=True,
                          text=True, timeout=120, env=env)


def test_compare_help_lists_its_sections_and_sizes():
    done = run_script("compare.py", "--help")
    assert done.returncode == 0, done.stderr
    for word in ("--quick", "--full", "step3d", "step2d", "pipeline", "predict"):
        assert word in done.stdout


def test_gpu_harness_without_a_gpu_says_so_and_exits_2():
    done = run_script("gpu.py", env=dict(os.environ, CUDA_VISIBLE_DEVICES="-1"))
    assert done.returncode == gpu.NO_GPU_EXIT
    assert "no CUDA GPU visible" in done.stderr and "compare.py" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(("size", "window", "overlap"), [
    pytest.param(24, 16, 0.5, id="two-windows"),
    pytest.param(300, 32, 0.5, id="ct-depth"),
    pytest.param(512, 128, 0.25, id="ct-width-quarter-overlap"),
    pytest.param(10, 16, 0.5, id="smaller-than-window"),
])
def test_numpy_window_starts_equal_the_sliding_windows(size, window, overlap):
    import tfcovseg  # noqa: F401  (Keras 2 first)
    from tfcovseg.models.sliding_window import window_starts

    assert compare.window_starts(size, window, overlap) == window_starts(size, window, overlap).numpy().tolist()


def test_speedup_is_peer_time_over_ours_and_our_rate_over_the_peers():
    step = compare.row("step", {"median": 2.0}, {"median": 3.0}, "s/step", goal=1.5)
    rate = compare.row("pipeline", {"median": 6.0}, {"median": 2.0}, "volumes/s", goal=1.0)
    missing = compare.row("pipeline", {"median": 6.0}, {"unavailable": "MONAI not installed"}, "volumes/s")
    assert compare.speedup(step) == pytest.approx(1.5)
    assert compare.speedup(rate) == pytest.approx(3.0)
    assert compare.speedup(missing) is None
    table = compare.markdown([step, rate, missing])
    assert "**1.50x** (goal 1.5x: met)" in table
    assert "MONAI not installed" in table
    assert len(table.splitlines()) == 5


def test_gpu_report_projects_the_papers_recipe_from_the_fastest_keras_steps():
    steps = {("Keras mixed_float16", "stage 1"): {"median": 0.5, "peak_gpu_gb": 7.0},
             ("Keras mixed_float16 + XLA", "stage 1"): {"median": 0.4, "peak_gpu_gb": 6.0},
             ("Keras mixed_float16", "stage 2"): {"median": 0.3, "peak_gpu_gb": 9.0},
             ("PyTorch AMP + channels_last_3d", "stage 2"): {"error": "out of memory"}}
    packing = [{"copies": 2, "epoch_s": 10.0, "cells_per_hour": 3.6, "wall_s": 30.0}]
    text = gpu.report(steps, {"median": 8.0}, {"median": 0.1}, packing)
    hours = (gpu.PAPER_3D_STEPS["stage 1"] * 0.4 + gpu.PAPER_3D_STEPS["stage 2"] * 0.3) / 3600
    assert f"{hours:.1f} h of training steps" in text
    assert "failed: out of memory" in text
    assert f"{600 / 3.6 / 24:.1f} days" in text
