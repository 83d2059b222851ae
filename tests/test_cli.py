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
    assert result.exit_code == 2
    assert f"Invalid value for '--shape': 2 is not in the range x>={MIN_SIZE}" in result.output
    assert not out.exists()


def test_synth_refuses_crossed_lesion_counts_in_one_error_line(tmp_path):
    out = tmp_path / "phantoms"
    result = CliRunner().invoke(main, ["synth", str(out), "--lesion-count", "5", "2"])
    assert result.exit_code == 1
    assert result.output.strip() == ("error: phantoms: lesion_count must be [min, max] with "
                                     "min <= max, got [5, 2]")
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
                                       batch_size=None, input_window=(-1250.0, 250.0),
                                       tta_axes=None, lung_model=None)


def test_evaluate_passes_the_input_window_in_hu(tmp_path, monkeypatch):
    import tfcovseg.infer.evaluate

    evaluate_configured = mock.create_autospec(tfcovseg.infer.evaluate.evaluate_configured)
    monkeypatch.setattr(tfcovseg.infer.evaluate, "evaluate_configured", evaluate_configured)
    result = CliRunner().invoke(main, ["evaluate", "--model", str(tmp_path), "--data",
                                       str(tmp_path), "--input-window", "-1250", "250"])
    assert result.exit_code == 0, result.output
    assert evaluate_configured.call_args.kwargs["input_window"] == (-1250.0, 250.0)


def _wiring_cases():
    """``(command line, module, function, expected call)``: each command is a thin shell around
    one package call; ``PATH`` stands for an existing path made by the test."""
    from tfcovseg.settings.phantoms import Phantoms

    return [
        pytest.param(["synth", "OUT"], "tfcovseg.io.phantoms", "synthesize_dataset",
                     mock.call("OUT", Phantoms()), id="synth"),
        pytest.param(["prepare", "mosmed", "--src", "PATH", "--out", "OUT"],
                     "tfcovseg.io.converters", "prepare",
                     mock.call("mosmed", "PATH", "OUT", annotations=None, labels=None, window=None,
                               masks=None), id="prepare"),
        pytest.param(["convert-weights", "--faimed3d", "PATH/w.pth", "--out", "OUT.h5"],
                     "tfcovseg.models.convert", "convert_weights",
                     mock.call(torchvision=None, faimed3d="PATH/w.pth", out="OUT.h5"),
                     id="convert-weights"),
        pytest.param(["convert-grid", "PATH/w.pth", "--arch", "fpn"], "tfcovseg.bench.released",
                     "convert_grid", mock.call("PATH/w.pth", None, experiment=None, arch="fpn",
                                               encoder=None, init=None), id="convert-grid"),
        pytest.param(["preview", "PATH", "--pipeline", "2d"], "tfcovseg.data.preview",
                     "preview_dataset", mock.call("PATH", "preview.png", "2d", 4, 0, "lesions"),
                     id="preview"),
        pytest.param(["train", "--config", "ricord_r3d18", "seed=3"], "tfcovseg.train.run", "train",
                     mock.call(config="ricord_r3d18", data=None, out=None, resume=None,
                               strategy=None, overrides=["seed=3"], init=None), id="train"),
        pytest.param(["export", "--model", "PATH", "--out", "OUT"], "tfcovseg.infer.export",
                     "export_savedmodel",
                     mock.call(model_dir="PATH", out="OUT", version=1, tta_axes=None,
                               lung_model=None), id="export"),
        pytest.param(["export", "--model", "PATH/cells/lesions_in_lungs-c.json", "--out", "OUT",
                      "--lung-model", "PATH/cells/lungs-c.json", "--tta"],
                     "tfcovseg.infer.export", "export_savedmodel",
                     mock.call(model_dir="PATH/cells/lesions_in_lungs-c.json", out="OUT",
                               version=1, tta_axes=(0, 1, 2),
                               lung_model="PATH/cells/lungs-c.json"), id="export-cell"),
        pytest.param(["bench", "--shard", "1/4"], "tfcovseg.bench.run", "run_bench",
                     mock.call(config="bench_smoke", data=None, out=None, only=None, shard="1/4",
                               ray_address=None), id="bench"),
        pytest.param(["bench", "report", "PATH"], "tfcovseg.bench.report", "write_report",
                     mock.call("PATH"), id="bench-report"),
    ]


@pytest.mark.parametrize("arguments, module, function, expected", _wiring_cases())
def test_each_command_makes_its_one_package_call(tmp_path, monkeypatch, arguments, module,
                                                 function, expected):
    import importlib

    (tmp_path / "PATH" / "cells").mkdir(parents=True)
    for name in ("w.pth", "cells/lesions_in_lungs-c.json", "cells/lungs-c.json"):
        (tmp_path / "PATH" / name).touch()
    target = importlib.import_module(module)
    package_call = mock.create_autospec(getattr(target, function))
    monkeypatch.setattr(target, function, package_call)

    def real(value):
        return str(tmp_path / value) if value.split("/")[0] in ("PATH", "OUT", "OUT.h5") else value

    result = CliRunner().invoke(main, [real(a) for a in arguments])
    assert result.exit_code == 0, result.output
    expected_args = [real(a) if isinstance(a, str) else a for a in expected.args]
    expected_kwargs = {k: real(v) if isinstance(v, str) else v for k, v in expected.kwargs.items()}
    package_call.assert_called_once_with(*expected_args, **expected_kwargs)
