"""The paper's 3D U-Net (95 M parameters) through prediction and export, at a small input size."""

import numpy as np
import pytest
from standins import serve_in_plain_tensorflow

from tfcovseg.infer.export import export_keras_model
from tfcovseg.infer.predictor import keras_predictor
from tfcovseg.io.phantoms import phantom
from tfcovseg.rundir import InputSpec
from tfcovseg.settings.data import Intensity
from tfcovseg.settings.inference import Inference

pytestmark = pytest.mark.slow

SPEC = InputSpec(mode="resize", size=(8, 32, 32), intensity=Intensity(clip=(-2000.0, 500.0)))
SPACING = (5.0, 2.5, 2.5)


@pytest.fixture(scope="module")
def model():
    from tfcovseg.models import unet3d

    return unet3d()


def test_unet3d_export_served_without_tfcovseg_matches_keras(model, tmp_path):
    image, _, _ = phantom(np.random.default_rng(0), shape=(10, 40, 36))
    expected = keras_predictor(model, SPEC)(image, SPACING)
    assert expected.shape == image.shape and np.isfinite(expected).all()
    version_dir = export_keras_model(model, SPEC, tmp_path / "export")
    served = serve_in_plain_tensorflow(version_dir, image[None], SPACING, tmp_path)
    np.testing.assert_allclose(served[0], expected, atol=1e-4)


def test_unet3d_in_patch_mode_covers_a_larger_volume(model):
    image, _, _ = phantom(np.random.default_rng(1), shape=(12, 48, 40))
    spec = InputSpec(mode="patch", size=SPEC.size, intensity=SPEC.intensity, spacing=(4.0, 3.0, 3.0))
    probabilities = keras_predictor(model, spec, Inference(batch_size=2))(image, SPACING)
    assert probabilities.shape == image.shape and np.isfinite(probabilities).all()
