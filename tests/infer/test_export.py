import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from standins import serve_in_plain_tensorflow, sphere_ct, tiny_unet

from tfcovseg.errors import TfcovsegError
from tfcovseg.infer.export import export_keras_model, export_savedmodel
from tfcovseg.infer.predictor import EXPORT_FILE, keras_predictor, load_predictor
from tfcovseg.rundir import InputSpec
from tfcovseg.settings.data import Intensity
from tfcovseg.settings.inference import Inference

SPEC = InputSpec(mode="resize", size=(8, 16, 16), intensity=Intensity(clip=(-1000.0, 500.0)))
SPACING = np.array([5.0, 0.8, 0.7], np.float32)
# a patch-mode model trained at 2.5 x 1.6 x 1.4 mm, exported with all 8 flips
RESAMPLED = InputSpec(mode="patch", size=(4, 8, 8), intensity=SPEC.intensity,
                      spacing=(2.5, 1.6, 1.4))
MIRRORED = Inference(overlap=0.5, batch_size=2, tta_axes=(0, 1, 2))


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    model = tiny_unet()
    out = tmp_path_factory.mktemp("export")
    version_dir = export_keras_model(model, SPEC, out, version=3)
    return model, out, version_dir


def test_export_has_tf_serving_layout_and_a_description(export):
    _, out, version_dir = export
    assert version_dir == out / "3"
    assert (version_dir / "saved_model.pb").is_file() and (version_dir / "variables").is_dir()
    info = json.loads((out / EXPORT_FILE).read_text())
    assert info["kind"] == "tfcovseg-export" and info["input"]["size"] == [8, 16, 16]
    assert set(info["inputs"]) == {"ct", "spacing_mm"}
    assert info["inputs"]["spacing_mm"].startswith("float32 [3], voxel size in mm along D, H, W")
    assert info["tta_axes"] is None and info["input"]["spacing"] is None


def test_export_runs_without_tfcovseg_and_matches_the_keras_model(export, tmp_path):
    model, _, version_dir = export
    hu, _ = sphere_ct(shape=(10, 20, 24))
    batch = np.stack([hu, hu[:, ::-1] - 50.0])
    served = serve_in_plain_tensorflow(version_dir, batch, SPACING, tmp_path)
    assert served.shape == batch.shape and served.dtype == np.float32
    predictor = keras_predictor(model, SPEC)
    for volume, probabilities in zip(batch, served):
        np.testing.assert_allclose(probabilities, predictor(volume, SPACING), atol=1e-4)


def test_readme_rest_request_body_fits_the_signature_and_predicts(export, tmp_path):
    import re

    import tensorflow as tf

    model, _, version_dir = export
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    template = re.search(r"-d '(\{.*\[VOLUME\].*\})'", readme).group(1)
    hu, _ = sphere_ct(shape=(9, 18, 20))
    body = json.loads(template.replace("VOLUME", json.dumps(hu.tolist()))  # [VOLUME]: a batch of 1
                      .replace("D_MM, H_MM, W_MM", "5.0, 0.8, 0.7"))
    signature = tf.saved_model.load(str(version_dir)).signatures[body["signature_name"]]
    assert set(body["inputs"]) == set(signature.structured_input_signature[1])
    # TF Serving turns the JSON lists into tensors of the signature's dtypes (float32)
    batch = np.asarray(body["inputs"]["ct"], np.float32)
    spacing = np.asarray(body["inputs"]["spacing_mm"], np.float32)
    served = serve_in_plain_tensorflow(version_dir, batch, spacing, tmp_path)
    np.testing.assert_allclose(served[0], keras_predictor(model, SPEC)(hu, SPACING), atol=1e-4)


def test_saved_model_cli_lists_the_signature(export):
    _, _, version_dir = export
    cli = shutil.which("saved_model_cli")
    if cli is None:
        pytest.skip("saved_model_cli is not installed with this TensorFlow")
    shown = subprocess.run([cli, "show", "--dir", str(version_dir), "--all"], check=True,
                           capture_output=True, text=True, timeout=300).stdout
    assert "serving_default" in shown and "ct" in shown and "lesion_probability" in shown
    assert "(-1, -1, -1, -1)" in shown and "spacing_mm" in shown


def test_export_folder_and_version_folder_load_as_predictors(export):
    model, out, version_dir = export
    hu, _ = sphere_ct(shape=(9, 17, 15))
    expected = keras_predictor(model, SPEC)(hu, SPACING)
    for path in (out, version_dir):
        np.testing.assert_allclose(load_predictor(path)(hu, SPACING), expected, atol=1e-4)


def test_export_refuses_to_overwrite_a_version(export):
    model, out, _ = export
    with pytest.raises(TfcovsegError, match="exists already"):
        export_keras_model(model, SPEC, out, version=3)


def test_patch_mode_export_runs_the_sliding_window_in_the_graph(tmp_path):
    model = tiny_unet()
    spec = InputSpec(mode="patch", size=(4, 8, 8), intensity=SPEC.intensity)
    inference = Inference(overlap=0.5, batch_size=3)
    export_keras_model(model, spec, tmp_path, inference=inference)
    hu, _ = sphere_ct(shape=(7, 19, 13))  # not a multiple of the window, and thinner in W
    expected = keras_predictor(model, spec, inference)(hu, SPACING)
    np.testing.assert_allclose(load_predictor(tmp_path)(hu, SPACING), expected, atol=1e-5)


def test_export_of_a_run_folder(make_run, tmp_path):
    target = export_savedmodel(make_run(), tmp_path / "served", version=1)
    assert (target / "saved_model.pb").is_file()


@pytest.fixture(scope="module")
def resampled_export(tmp_path_factory):
    model = tiny_unet(seed=5)
    out = tmp_path_factory.mktemp("resampled-export")
    return model, out, export_keras_model(model, RESAMPLED, out, inference=MIRRORED)


def test_the_export_resamples_and_mirrors_in_the_graph_as_the_keras_predictor(resampled_export,
                                                                             tmp_path):
    model, out, version_dir = resampled_export
    hu, _ = sphere_ct(shape=(9, 21, 17), centre=(0.4, 0.35, 0.7))
    expected = keras_predictor(model, RESAMPLED, MIRRORED)(hu, SPACING)
    served = serve_in_plain_tensorflow(version_dir, hu[None], SPACING, tmp_path)  # no tfcovseg
    assert served.shape == (1, *hu.shape)
    np.testing.assert_allclose(served[0], expected, atol=1e-5)
    loaded = load_predictor(out)
    assert loaded.tta_axes == (0, 1, 2) and loaded.spec.spacing == (2.5, 1.6, 1.4)
    np.testing.assert_allclose(loaded(hu, SPACING), expected, atol=1e-5)
    info = json.loads((out / EXPORT_FILE).read_text())
    assert info["tta_axes"] == [0, 1, 2] and info["input"]["spacing"] == [2.5, 1.6, 1.4]
    assert "resampled to input.spacing" in info["inputs"]["spacing_mm"]


@pytest.mark.parametrize("spacing", [pytest.param([0.0, 0.8, 0.7], id="zero"),
                                     pytest.param([5.0, 0.8, -0.7], id="negative")])
def test_the_serving_signature_refuses_a_spacing_that_is_not_positive(resampled_export, spacing):
    import tensorflow as tf

    _, _, version_dir = resampled_export
    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    hu, _ = sphere_ct(shape=(9, 21, 17))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"spacing_mm must be 3 positive voxel sizes in mm \(D, H, W\)"):
        signature(ct=tf.constant(hu[None]), spacing_mm=tf.constant(spacing, tf.float32))


def test_export_of_a_run_folder_with_mirroring(make_run, tmp_path):
    run = make_run(mode="patch", size=(4, 8, 8), spacing=(2.5, 1.6, 1.4))
    export_savedmodel(run, tmp_path / "served", tta_axes=(1, 2))
    info = json.loads((tmp_path / "served" / EXPORT_FILE).read_text())
    assert info["tta_axes"] == [1, 2] and info["input"]["spacing"] == [2.5, 1.6, 1.4]


def test_export_refuses_bad_mirroring_axes_before_anything_is_built(tmp_path):
    with pytest.raises(TfcovsegError, match="test-time mirroring: axes must be distinct"):
        export_savedmodel(tmp_path / "not-a-run", tmp_path / "served", tta_axes=(0, 5))
    assert not (tmp_path / "served").exists()
