"""Fixtures for the model tests: benchmark modules they compare with (benchmarks/)."""

import sys
from pathlib import Path

import pytest

import tfcovseg  # noqa: F401  (first: selects Keras 2 before any test module imports TensorFlow)

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def benchmark_module(name: str, needs: str):
    """``benchmarks/<name>.py`` as a module; the test skips when package ``needs`` is missing."""
    pytest.importorskip(needs)
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return pytest.importorskip(name)


@pytest.fixture(scope="session")
def reference():
    """The ``reference_torch`` module (skips without torch/torchvision)."""
    # reference_torch imports torchvision itself, after keeping triton out (it crashes next to TF).
    return benchmark_module("reference_torch", needs="torch")


@pytest.fixture(scope="module")
def grid_parity():
    """``benchmarks/grid_parity.py`` (skips without torch and smp)."""
    return benchmark_module("grid_parity", needs="segmentation_models_pytorch")

