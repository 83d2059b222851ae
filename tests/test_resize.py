"""resize_linear / resize_nearest against NumPy versions of PyTorch's formulas and torch."""

import numpy as np
import pytest

from tfcovseg.resize import resize_linear, resize_nearest

SIZES = [((5, 7, 9), (3, 11, 4)), ((4, 6, 6), (9, 12, 13)), ((3, 5, 1), (1, 2, 4))]


def linear_align_corners_1d(x, out, axis):
    """PyTorch ``interpolate(mode='linear', align_corners=True)`` along one axis."""
    size = x.shape[axis]
    scale = (size - 1) / (out - 1) if out > 1 else 0.0
    src = np.arange(out) * scale
    lo = np.minimum(np.floor(src).astype(int), size - 1)
    hi = np.minimum(lo + 1, size - 1)
    weight = (src - lo).reshape([-1 if a == axis else 1 for a in range(x.ndim)])
    return np.take(x, lo, axis) * (1 - weight) + np.take(x, hi, axis) * weight


def nearest_legacy_1d(x, out, axis):
    """PyTorch's legacy ``nearest``: ``src = min(floor(dst * in / out), in - 1)``."""
    size = x.shape[axis]
    src = np.minimum(np.floor(np.arange(out) * (size / out)).astype(int), size - 1)
    return np.take(x, src, axis)


def reference(x, size, resize_1d):
    for axis, out in zip((1, 2, 3), size):
        x = resize_1d(x, out, axis)
    return x


@pytest.mark.parametrize(("shape", "size"), SIZES)
def test_resize_linear_matches_pytorch_align_corners_formula(shape, size):
    x = np.random.default_rng(0).normal(size=(2, *shape, 3)).astype(np.float32)
    got = resize_linear(x, size).numpy()
    np.testing.assert_allclose(got, reference(x, size, linear_align_corners_1d), atol=1e-5)


@pytest.mark.parametrize(("shape", "size"), SIZES)
def test_resize_nearest_matches_pytorch_legacy_rule(shape, size):
    x = np.random.default_rng(1).integers(0, 5, size=(1, *shape, 2)).astype(np.int32)
    got = resize_nearest(x, size).numpy()
    np.testing.assert_array_equal(got, reference(x, size, nearest_legacy_1d))


def test_resize_keeps_corner_values_with_align_corners():
    x = np.random.default_rng(2).normal(size=(4, 5, 6, 1)).astype(np.float32)
    got = resize_linear(x, (7, 9, 3)).numpy()
    for corner in [(0, 0, 0), (-1, -1, -1), (0, -1, 0)]:
        assert got[corner][0] == pytest.approx(x[corner][0], abs=1e-6)


@pytest.mark.reference
@pytest.mark.parametrize(("shape", "size"), SIZES)
def test_resize_matches_torch_interpolate(shape, size):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(3).normal(size=(1, 2, *shape)).astype(np.float32)
    channels_last = np.moveaxis(x, 1, -1)
    linear = torch.nn.functional.interpolate(
        torch.from_numpy(x), size=size, mode="trilinear", align_corners=True
    ).numpy()
    nearest = torch.nn.functional.interpolate(
        torch.from_numpy(x), size=size, mode="nearest"
    ).numpy()
    np.testing.assert_allclose(
        resize_linear(channels_last, size).numpy(), np.moveaxis(linear, 1, -1), atol=1e-5
    )
    np.testing.assert_array_equal(
        resize_nearest(channels_last, size).numpy(), np.moveaxis(nearest, 1, -1)
    )
