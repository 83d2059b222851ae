import numpy as np
import pytest

from tfcovseg.data.intensity import normalise
from tfcovseg.settings.data import Intensity


def test_minmax_scales_each_volume_to_unit_range_after_clipping():
    rng = np.random.default_rng(0)
    batch = np.stack([rng.uniform(-3000, 3000, (3, 4, 5)), rng.uniform(-10, 10, (3, 4, 5))])
    out = normalise(batch.astype(np.float32), Intensity(clip=(-2000.0, 500.0))).numpy()
    for volume, raw in zip(out, batch):
        clipped = np.clip(raw, -2000, 500)
        expected = (clipped - clipped.min()) / (clipped.max() - clipped.min())
        np.testing.assert_allclose(volume, expected, atol=1e-6)


def test_fixed_scaling_uses_mean_and_std():
    hu = np.array([[[-1000.0, -500.0, 0.0]]], np.float32)
    out = normalise(hu, Intensity(scaling="fixed", mean=-500.0, std=500.0)).numpy()
    np.testing.assert_allclose(out, [[[-1.0, 0.0, 1.0]]])


def test_constant_volume_does_not_divide_by_zero():
    out = normalise(np.full((2, 2, 2), 7.0, np.float32), Intensity()).numpy()
    assert np.isfinite(out).all()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="low < high"):
        Intensity(clip=(500.0, -2000.0))
    with pytest.raises(ValueError, match=r"std is 0.0; allowed: > 0"):
        Intensity(std=0.0)
