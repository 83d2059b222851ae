"""resize_linear / resize_nearest against NumPy versions of PyTorch's formulas and torch."""

import numpy as np
import pytest

from tfcovseg.resize import resampled_size, resize_linear, resize_nearest

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


def nearest_align_corners_1d(x, out, axis):
    """The voxel nearest to ``align_corners=True``'s position ``dst * (in - 1) / (out - 1)``."""
    size = x.shape[axis]
    scale = (size - 1) / (out - 1) if out > 1 else 0.0
    src = np.minimum(np.floor(np.arange(out) * scale + 0.5).astype(int), size - 1)
    return np.take(x, src, axis)


@pytest.mark.parametrize(("shape", "size"), SIZES)
def test_aligned_nearest_picks_the_voxel_nearest_to_the_linear_positions(shape, size):
    x = np.random.default_rng(4).integers(0, 5, size=(1, *shape, 1)).astype(np.int32)
    got = resize_nearest(x, size, align_corners=True).numpy()
    np.testing.assert_array_equal(got, reference(x, size, nearest_align_corners_1d))


@pytest.mark.parametrize(("shape", "spacing", "target", "expected"), [
    pytest.param((10, 40, 36), (5.0, 0.8, 0.7), (2.5, 1.6, 1.4), [20, 20, 18], id="finer-and-coarser"),
    pytest.param((16, 48, 48), (15.0, 7.5, 7.5), (15.0, 7.5, 7.5), [16, 48, 48], id="same"),
    pytest.param((3, 5, 7), (1.0, 1.0, 1.0), (2.0, 2.0, 2.0), [2, 3, 4], id="halves-round-up"),
    pytest.param((1, 5, 5), (1.0, 1.0, 1.0), (5.0, 1.0, 1.0), [0, 5, 5], id="under-half-a-voxel"),
])
def test_resampled_size_is_nnunets_round_of_size_times_spacing_ratio(shape, spacing, target,
                                                                     expected):
    assert [int(n) for n in resampled_size(shape, spacing, target)] == expected


def _centroid_mm(mask, spacing):
    return np.array([(np.nonzero(mask)[a].mean()) * spacing[a] for a in range(3)])


def test_resampling_to_a_spacing_and_back_keeps_the_grid_and_a_centred_sphere_centred():
    shape, spacing, target = (21, 61, 57), (5.0, 0.8, 0.7), (2.0, 1.5, 1.3)
    grid = np.meshgrid(*(np.arange(n) * s for n, s in zip(shape, spacing)), indexing="ij")
    centre = [(n - 1) * s / 2 for n, s in zip(shape, spacing)]
    inside = sum((g - c) ** 2 for g, c in zip(grid, centre)) < 18.0**2  # radius 18 mm
    volume = np.where(inside, 100.0, -1000.0).astype(np.float32)[..., None]

    size = resampled_size(shape, spacing, target)
    resampled = resize_linear(volume, size).numpy()[..., 0]
    assert list(resampled.shape) == [int(n) for n in size] == [53, 33, 31]
    # the resampled grid spans the same extent: first and last voxel centres stay in place
    resampled_spacing = [(n - 1) * s / (m - 1) for n, s, m in zip(shape, spacing, resampled.shape)]
    np.testing.assert_allclose(resampled_spacing, target, rtol=0.05)
    np.testing.assert_allclose(_centroid_mm(resampled > -450, resampled_spacing), centre,
                               atol=min(target) / 2)

    back = resize_linear(resampled[..., None], shape).numpy()[..., 0]
    assert back.shape == shape
    np.testing.assert_allclose(_centroid_mm(back > -450, spacing), centre, atol=min(spacing))
    assert np.mean((back > -450) == inside) > 0.99


def test_a_label_resampled_with_its_image_stays_on_it():
    shape, spacing, target = (12, 30, 26), (5.0, 0.8, 0.7), (2.5, 1.6, 1.4)
    label = np.zeros(shape, np.uint8)
    label[3:7, 8:20, 5:17] = 1
    image = np.where(label > 0, 800.0, -1000.0).astype(np.float32)
    size = resampled_size(shape, spacing, target)
    image_out = resize_linear(image[..., None], size).numpy()[..., 0]
    label_out = resize_nearest(label[..., None], size, align_corners=True).numpy()[..., 0]
    # every resampled lesion voxel is mostly marker, every other voxel mostly air
    assert image_out[label_out > 0].min() > -100 and image_out[label_out == 0].max() < -100
