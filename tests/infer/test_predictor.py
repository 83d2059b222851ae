import numpy as np
import pytest
from standins import pointwise_probability, sphere_ct, tiny_unet

from tfcovseg.data.intensity import Intensity, normalise
from tfcovseg.errors import TfcovsegError
from tfcovseg.infer.predictor import keras_predictor, lesion_mask, load_predictor
from tfcovseg.metrics import dice
from tfcovseg.rundir import InputSpec

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
