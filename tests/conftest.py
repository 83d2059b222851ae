"""Shared fixtures: a small prepared dataset of CT phantoms for everyone's tests."""

import sys

import pytest

# triton (pulled in by torch._dynamo through torchvision/timm) segfaults when it loads after
# TensorFlow; the CPU reference models need none of it, and torch works without it.
sys.modules.setdefault("triton", None)

PHANTOM_SHAPE = (24, 64, 64)


def pytest_addoption(parser):
    parser.addoption("--heavy", action="store_true",
                     help="also run the tests marked heavy (all 100 grid parity pairs and the "
                          "large encoders: about 15 minutes more on 2 CPU cores)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--heavy"):
        return
    skip = pytest.mark.skip(reason="heavy: run with --heavy")
    for item in items:
        if "heavy" in item.keywords:
            item.add_marker(skip)
PHANTOM_SPACING = (5.0, 2.5, 2.5)


@pytest.fixture(scope="session")
def phantom_dataset(tmp_path_factory):
    """4 phantoms (24x64x64, spacing 5x2.5x2.5 mm, seed 0); case 3 has no lesions.

    Images int16 HU, labels 0/1, lungs 1 = right / 2 = left, all RAS+ (see tfcovseg.io.phantoms).
    Session-scoped and shared: treat the files as read-only.
    """
    from tfcovseg.io.phantoms import synthesize_dataset
    from tfcovseg.settings.phantoms import Phantoms

    out = tmp_path_factory.mktemp("phantoms")
    return synthesize_dataset(out, Phantoms(cases=4, seed=0, shape=PHANTOM_SHAPE,
                                            spacing=PHANTOM_SPACING))
