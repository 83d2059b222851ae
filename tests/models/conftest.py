"""Fixtures for the model tests: the PyTorch reference (benchmarks/reference_torch.py)."""

import sys
from pathlib import Path

import pytest

import tfcovseg  # noqa: F401  (first: selects Keras 2 before any test module imports TensorFlow)

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="session")
def reference():
    """The ``reference_torch`` module (skips without torch/torchvision)."""
    pytest.importorskip("torch")
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    # reference_torch imports torchvision itself, after keeping triton out (it crashes next to TF).
    return pytest.importorskip("reference_torch")

