import subprocess
import sys
from unittest import mock

import pytest
from click.testing import CliRunner

from tfcovseg.cli import main


def test_help_lists_every_command_with_one_line():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("synth", "prepare", "convert-weights", "train", "evaluate", "predict", "export", "bench"):
        assert command in result.output


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and "tfcovseg" in result.output


def test_user_error_is_one_red_line_and_nonzero_exit(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tfcovseg.cli", "train", "--config", str(tmp_path / "nope.yaml")],
        capture_output=True, text=True, cwd=tmp_path.parent, env=None,
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "nope.yaml" in lines[0]
    assert "Traceback" not in result.stderr


def test_help_does_not_import_tensorflow():
    code = "import sys, tfcovseg.cli as cli; cli.main(['--help'], standalone_mode=False); print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip().endswith("False")


def test_preview_draws_augmented_samples_of_a_dataset(phantom_dataset, tmp_path):
    out = tmp_path / "preview.png"
    result = CliRunner().invoke(main, ["preview", str(phantom_dataset.root), "--out", str(out),
                                       "--pipeline", "2d", "--samples", "2"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_convert_imagenet_for_an_unknown_encoder_is_one_error_line(tmp_path):
    result = CliRunner().invoke(main, ["convert-imagenet", "resnet9000", "--out", str(tmp_path / "x.h5")])
    assert result.exit_code == 1
    assert "resnet9000" in result.output


def test_synth_refuses_a_shape_below_the_smallest_phantom_before_writing(tmp_path):
    from tfcovseg.settings.phantoms import MIN_SIZE

    out = tmp_path / "phantoms"
    result = CliRunner().invoke(main, ["synth", str(out), "--shape", "2", "64", "64"])
    assert result.exit_code == 1
    assert result.output.strip() == (f"error: phantoms: shape must be 3 sizes (D, H, W) of at "
                                     f"least {MIN_SIZE} voxels, got (2, 64, 64)")
    assert not out.exists()


@pytest.mark.parametrize("arguments, option", [
    pytest.param(["synth", "OUT", "--cases", "0"], "--cases", id="synth-no-cases"),
    pytest.param(["synth", "OUT", "--spacing", "5", "0", "2.5"], "--spacing", id="synth-spacing"),
    pytest.param(["synth", "OUT", "--seed", "-1"], "--seed", id="synth-seed"),
    pytest.param(["predict", "--model", "RUN", "--overlap", "1", "CT"], "--overlap",
                 id="predict-overlap"),
    pytest.param(["predict", "--model", "RUN", "--batch-size", "0", "CT"], "--batch-size",
                 id="predict-batch"),
    pytest.param(["evaluate", "--model", "RUN", "--data", "CT", "--overlap", "1"], "--overlap",
                 id="evaluate-overlap"),
    pytest.param(["evaluate", "--predictions", "RUN", "--data", "CT", "--tolerance", "0"],
                 "--tolerance", id="evaluate-tolerance"),
    pytest.param(["preview", "RUN", "--samples", "0"], "--samples", id="preview-samples"),
    pytest.param(["export", "--model", "RUN", "--out", "OUT", "--version", "0"], "--version",
                 id="export-version"),
])
def test_out_of_range_options_are_refused_naming_the_option(tmp_path, arguments, option):
    (tmp_path / "RUN").mkdir()
    (tmp_path / "CT").mkdir()
    arguments = [str(tmp_path / a) if a in ("RUN", "CT", "OUT") else a for a in arguments]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CT", "RUN"]


def test_predict_passes_the_input_window_in_hu(tmp_path, monkeypatch):
    import tfcovseg.infer.predict

    predict_ct = mock.create_autospec(tfcovseg.infer.predict.predict_ct)
    monkeypatch.setattr(tfcovseg.infer.predict, "predict_ct", predict_ct)
    ct = tmp_path / "ct.nii.gz"
    ct.touch()
    result = CliRunner().invoke(main, ["predict", "--model", str(tmp_path), str(ct),
                                       "--input-window", "-1250", "250"])
    assert result.exit_code == 0, result.output
    predict_ct.assert_called_once_with(model_dir=str(tmp_path), input_path=str(ct), out=None,
                                       probabilities=False, lung_mask=None, overlap=None,
                                       batch_size=None, input_window=(-1250.0, 250.0))


def test_evaluate_passes_the_input_window_in_hu(tmp_path, monkeypatch):
    import tfcovseg.infer.evaluate

    evaluate_configured = mock.create_autospec(tfcovseg.infer.evaluate.evaluate_configured)
    monkeypatch.setattr(tfcovseg.infer.evaluate, "evaluate_configured", evaluate_configured)
    result = CliRunner().invoke(main, ["evaluate", "--model", str(tmp_path), "--data",
                                       str(tmp_path), "--input-window", "-1250", "250"])
    assert result.exit_code == 0, result.output
    assert evaluate_configured.call_args.kwargs["input_window"] == (-1250.0, 250.0)
