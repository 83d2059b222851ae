import numpy as np
import pytest

from tfcovseg.errors import ConfigError
from tfcovseg.models.sliding_window import gaussian_importance, sliding_window, window_starts


def test_identity_model_reproduces_the_volume_after_blending():
    volume = np.random.default_rng(0).normal(size=(11, 21, 17)).astype(np.float32)
    result = sliding_window(volume, lambda b: b, window=(4, 8, 8), overlap=0.5, batch_size=3)
    np.testing.assert_allclose(result, volume, rtol=1e-5, atol=1e-5)


def test_volume_smaller_than_the_window_is_padded_and_cropped_back():
    volume = np.arange(3 * 5 * 6, dtype=np.float32).reshape(3, 5, 6)
    seen = []

    def model(batch):
        seen.append(batch)
        return batch * 2

    result = sliding_window(volume, model, window=(4, 8, 8))
    assert [batch.shape for batch in seen] == [(1, 4, 8, 8)]
    assert (np.asarray(seen[0])[0, 3:] == volume.min()).all()  # padded with the minimum, like training
    np.testing.assert_allclose(result, volume * 2, rtol=1e-6)


def test_windows_cover_every_voxel_with_the_requested_overlap():
    starts = window_starts(100, 32, 0.5).numpy()
    assert starts[0] == 0 and starts[-1] == 100 - 32
    assert max(np.diff(starts)) <= 16
    assert window_starts(32, 32, 0.5).numpy().tolist() == [0]


def test_windows_are_batched():
    sizes = []

    def model(batch):
        sizes.append(len(batch))
        return batch

    sliding_window(np.zeros((8, 16, 16)), model, window=(4, 8, 8), overlap=0.5, batch_size=4)
    # 3 x 3 x 3 = 27 windows in batches of at most 4
    assert sum(sizes) == 27 and max(sizes) == 4


def test_gaussian_peaks_at_the_centre_and_is_never_zero():
    weights = gaussian_importance((8, 16, 16))
    assert weights.max() == pytest.approx(1.0)
    assert weights.min() > 0
    assert weights[3:5, 7:9, 7:9].min() == weights.max()


def test_centre_predictions_outweigh_border_predictions():
    # a model that answers 1 at its window centre and 0 at the border; blending favours centres
    def model(batch):
        return gaussian_importance(batch.shape[1:])[None].repeat(len(batch), 0)

    result = sliding_window(np.zeros((4, 16, 16)), model, window=(4, 8, 8), overlap=0.5)
    assert np.asarray(result).mean() > gaussian_importance((4, 8, 8)).mean()


@pytest.mark.parametrize("settings, problem", [
    pytest.param({"overlap": 1.0}, r"overlap must be in \[0, 1\).*got 1$", id="overlap-one"),
    pytest.param({"overlap": -0.1}, r"overlap must be in \[0, 1\).*got -0.1$", id="negative"),
    pytest.param({"batch_size": 0}, "batch size must be a whole number of windows >= 1, got 0",
                 id="no-windows"),
])
def test_overlap_below_one_and_a_positive_batch_size_are_required(settings, problem):
    calls = []
    with pytest.raises(ConfigError, match=problem):
        sliding_window(np.zeros((4, 4, 4)), calls.append, window=(2, 2, 2), **settings)
    assert calls == []  # refused before any window is predicted
