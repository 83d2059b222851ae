from click.testing import CliRunner
from standins import write_predictions

from tfcovseg.cli import main


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
    assert "neither a tfcovseg run" in result.output
