import json

import numpy as np
import pytest
from standins import pointwise_probability, sphere_ct, tiny_unet

from tfcovseg.data.intensity import normalise
from tfcovseg.errors import ConfigError, TfcovsegError
from tfcovseg.infer.predictor import (
    EXPORT_FILE,
    EXPORT_KIND,
    keras_predictor,
    load_predictor,
)
from tfcovseg.metrics import dice
from tfcovseg.models.sliding_window import lesion_mask
from tfcovseg.rundir import InputSpec
from tfcovseg.settings.data import Intensity

SPEC = InputSpec(mode="resize", size=(8, 16, 16), intensity=Intensity(clip=(-1000.0, 500.0)))


def test_resize_mode_returns_probabilities_on_the_input_grid():
    hu, inside = sphere_ct()
    probabilities = keras_predictor(tiny_unet(pointwise=True), SPEC)(hu)
    assert probabilities.shape == hu.shape and probabilities.dtype == np.float32
    assert probabilities.min() >= 0.0 and probabilities.max() <= 1.0
    # the pointwise model marks bright voxels; resizing to 8x16x16 and back keeps the sphere
    assert dice(inside, lesion_mask(probabilities)) > 0.9


def test_patch_mode_blends_a_pointwise_model_exactly():
    hu, _ = sphere_ct(shape=(11, 23, 19))
    spec = InputSpec(mode="patch", size=(4, 8, 8), intensity=SPEC.intensity)
    probabilities = keras_predictor(tiny_unet(pointwise=True), spec, overlap=0.5, batch_size=4)(hu)
    expected = pointwise_probability(normalise(hu, SPEC.intensity).numpy())
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)


def test_single_channel_models_get_grey_input():
    hu, inside = sphere_ct()
    probabilities = keras_predictor(tiny_unet(channels=1, pointwise=True), SPEC)(hu)
    assert dice(inside, lesion_mask(probabilities)) > 0.9


def test_run_folder_loads_as_a_predictor(make_run):
    hu, _ = sphere_ct()
    predictor = load_predictor(make_run())
    assert predictor.spec.size == (8, 16, 16)
    expected = keras_predictor(tiny_unet(), SPEC)(hu)
    np.testing.assert_allclose(predictor(hu), expected, atol=1e-6)


def test_folder_that_is_neither_run_nor_export_is_refused(tmp_path):
    with pytest.raises(TfcovsegError, match="neither a tfcovseg run"):
        load_predictor(tmp_path)


def test_sliding_window_settings_are_checked_before_the_model_loads(tmp_path):
    with pytest.raises(ConfigError, match=r"overlap must be in \[0, 1\)"):
        load_predictor(tmp_path, overlap=1.0)  # not even a run: the settings come first


def _fake_export(folder, mode, overlap, batch_size):
    """An export's info file beside a version folder; the SavedModel is never loaded."""
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "saved_model.pb").write_bytes(b"")
    spec = {"mode": mode, "size": [4, 8, 8]}
    (folder / EXPORT_FILE).write_text(json.dumps({
        "kind": EXPORT_KIND, "input": spec,
        "sliding_window": {"overlap": overlap, "batch_size": batch_size}}))
    return folder


@pytest.mark.parametrize("asked", [
    pytest.param({"overlap": 0.25}, id="other-overlap"),
    pytest.param({"batch_size": 1}, id="other-batch-size"),
])
def test_a_patch_mode_export_refuses_other_sliding_window_settings(tmp_path, asked):
    export = _fake_export(tmp_path, "patch", overlap=0.5, batch_size=3)
    with pytest.raises(ConfigError, match="export blends windows with overlap 0.5 and batch size "
                       "3, fixed when it was exported") as err:
        load_predictor(export, **asked)
    assert err.value.path == str(export / EXPORT_FILE)
