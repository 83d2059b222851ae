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

SPEC = InputSpec(mode="resize", size=(8, 16, 16), intensity=Intensity(clip=(-1000.0, 500.0)))



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


def test_export_runs_without_tfcovseg_and_matches_the_keras_model(export, tmp_path):
    model, _, version_dir = export
    hu, _ = sphere_ct(shape=(10, 20, 24))
    batch = np.stack([hu, hu[:, ::-1] - 50.0])
    served = serve_in_plain_tensorflow(version_dir, batch, tmp_path)
    assert served.shape == batch.shape and served.dtype == np.float32
    predictor = keras_predictor(model, SPEC)
    for volume, probabilities in zip(batch, served):
        np.testing.assert_allclose(probabilities, predictor(volume), atol=1e-4)


def test_readme_rest_request_body_fits_the_signature_and_predicts(export, tmp_path):
    import re

    import tensorflow as tf

    model, _, version_dir = export
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    template = re.search(r"-d '(\{.*\[VOLUME\].*\})'", readme).group(1)
    hu, _ = sphere_ct(shape=(9, 18, 20))
    body = json.loads(template.replace("VOLUME", json.dumps(hu.tolist())))  # [VOLUME]: a batch of 1
    signature = tf.saved_model.load(str(version_dir)).signatures[body["signature_name"]]
    assert set(body["inputs"]) == set(signature.structured_input_signature[1])
    # TF Serving turns the JSON lists into a tensor of the signature's dtype (float32)
    [batch] = body["inputs"].values()
    served = serve_in_plain_tensorflow(version_dir, np.asarray(batch, np.float32), tmp_path)
    np.testing.assert_allclose(served[0], keras_predictor(model, SPEC)(hu), atol=1e-4)


def test_saved_model_cli_lists_the_signature(export):
    _, _, version_dir = export
    cli = shutil.which("saved_model_cli")
    if cli is None:
        pytest.skip("saved_model_cli is not installed with this TensorFlow")
    shown = subprocess.run([cli, "show", "--dir", str(version_dir), "--all"], check=True,
                           capture_output=True, text=True, timeout=300).stdout
    assert "serving_default" in shown and "ct" in shown and "lesion_probability" in shown
    assert "(-1, -1, -1, -1)" in shown


def test_export_folder_and_version_folder_load_as_predictors(export):
    model, out, version_dir = export
    hu, _ = sphere_ct(shape=(9, 17, 15))
    expected = keras_predictor(model, SPEC)(hu)
    for path in (out, version_dir):
        np.testing.assert_allclose(load_predictor(path)(hu), expected, atol=1e-4)


def test_export_refuses_to_overwrite_a_version(export):
    model, out, _ = export
    with pytest.raises(TfcovsegError, match="exists already"):
        export_keras_model(model, SPEC, out, version=3)


def test_patch_mode_export_runs_the_sliding_window_in_the_graph(tmp_path):
    model = tiny_unet()
    spec = InputSpec(mode="patch", size=(4, 8, 8), intensity=SPEC.intensity)
    export_keras_model(model, spec, tmp_path, overlap=0.5, batch_size=3)
    hu, _ = sphere_ct(shape=(7, 19, 13))  # not a multiple of the window, and thinner in W
    expected = keras_predictor(model, spec, overlap=0.5, batch_size=3)(hu)
    np.testing.assert_allclose(load_predictor(tmp_path)(hu), expected, atol=1e-5)


def test_export_of_a_run_folder(make_run, tmp_path):
    target = export_savedmodel(make_run(), tmp_path / "served", version=1)
    assert (target / "saved_model.pb").is_file()
