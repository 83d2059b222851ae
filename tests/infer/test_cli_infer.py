from unittest import mock

import numpy as np
import pytest
from click.testing import CliRunner
from standins import sphere_ct, write_predictions

from tfcovseg.cli import main
from tfcovseg.io.nifti import write_volume


def test_evaluate_command_scores_a_predictions_folder(phantom_dataset, tmp_path):
    predictions = write_predictions(phantom_dataset, tmp_path / "pred")
    result = CliRunner().invoke(main, ["evaluate", "--data", str(phantom_dataset.root),
                                       "--predictions", str(predictions), "--tolerance", "2"])
    assert result.exit_code == 0, result.output
    assert "| NSD (2 mm) | 3 | 1.000 ± 0.000 |" in result.output
    assert (predictions / "evaluation" / "summary.md").is_file()


def test_predict_refuses_a_folder_that_is_not_a_model(tmp_path, ct_file):
    path, _ = ct_file
    result = CliRunner().invoke(main, ["predict", "--model", str(tmp_path), str(path)])
    assert result.exit_code == 1
    assert "not a model tfcovseg can predict with" in result.output


def test_predict_refuses_a_windowed_ct_with_one_error_line(make_run, tmp_path):
    hu, _ = sphere_ct()
    path = tmp_path / "ct_windowed.nii.gz"
    windowed = np.rint((hu + 1250) / 1500 * 255)  # Ma et al.'s [-1250, 250] HU -> 0..255
    write_volume(path, windowed, np.diag([0.7, 0.8, 5.0, 1.0]), np.uint8)
    result = CliRunner().invoke(main, ["predict", "--model", str(make_run()), str(path)])
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"error: {path}: intensities range 42..230: the volume looks windowed to 0..255, not in "
        "HU; declare the window it was cut from with --input-window LOW HIGH (HU; Ma et al.'s "
        "radiopaedia volumes: --input-window -1250 250)")
    assert list(tmp_path.glob("ct_windowed_lesions*")) == []


def test_predict_refuses_to_write_into_a_prepared_dataset(phantom_dataset, make_run):
    image = phantom_dataset.path(phantom_dataset.cases[2].image)
    before = sorted(image.parent.iterdir())
    result = CliRunner().invoke(main, ["predict", "--model", str(make_run()), str(image)])
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"error: {image}: lies inside the prepared dataset {phantom_dataset.root.resolve()} "
        "(dataset.json); "
        "predict does not write into a dataset: give --out MASK.nii.gz outside it")
    assert sorted(image.parent.iterdir()) == before


@pytest.mark.parametrize(("options", "expected"), [
    pytest.param([], None, id="no-mirroring"),
    pytest.param(["--tta"], (0, 1, 2), id="all-8-flips"),
    pytest.param(["--tta", "--tta-axes", "1", "--tta-axes", "2"], (1, 2), id="H-and-W"),
])
@pytest.mark.parametrize(("command", "module", "function"), [
    pytest.param(["predict", "--model", "MODEL", "CT"], "tfcovseg.infer.predict", "predict_ct",
                 id="predict"),
    pytest.param(["evaluate", "--model", "MODEL", "--data", "CT"], "tfcovseg.infer.evaluate",
                 "evaluate_configured", id="evaluate"),
    pytest.param(["export", "--model", "MODEL", "--out", "OUT"], "tfcovseg.infer.export",
                 "export_savedmodel", id="export"),
])
def test_tta_options_reach_the_package_call(tmp_path, monkeypatch, command, module, function,
                                            options, expected):
    import importlib

    (tmp_path / "MODEL").mkdir()
    (tmp_path / "CT").touch()
    target = importlib.import_module(module)
    package_call = mock.create_autospec(getattr(target, function))
    monkeypatch.setattr(target, function, package_call)
    arguments = [str(tmp_path / a) if a in ("MODEL", "CT", "OUT") else a for a in command]
    result = CliRunner().invoke(main, arguments + options)
    assert result.exit_code == 0, result.output
    assert package_call.call_args.kwargs["tta_axes"] == expected


def test_tta_axes_without_tta_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["export", "--model", str(tmp_path), "--out",
                                       str(tmp_path / "out"), "--tta-axes", "1"])
    assert result.exit_code == 2 and "--tta-axes chooses the axes of --tta" in result.output
    result = CliRunner().invoke(main, ["predict", "--model", str(tmp_path), str(tmp_path),
                                       "--tta", "--tta-axes", "3"])
    assert result.exit_code == 2 and "Invalid value for '--tta-axes'" in result.output
