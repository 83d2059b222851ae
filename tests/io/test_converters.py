import pytest
from click.testing import CliRunner

from tfcovseg.cli import main
from tfcovseg.errors import TfcovsegError
from tfcovseg.io.converters import prepare
from tfcovseg.io.manifest import load_dataset


def test_synth_and_prepare_commands_write_prepared_datasets(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["synth", str(tmp_path / "ph"), "--cases", "2", "--shape",
                                  "8", "32", "32"])
    assert result.exit_code == 0, result.output
    assert "wrote 2 phantoms" in result.output
    result = runner.invoke(main, ["prepare", "folder", "--src", str(tmp_path / "ph"), "--out",
                                  str(tmp_path / "mine")])
    assert result.exit_code == 0, result.output
    assert "folder: wrote 2 cases" in result.output
    dataset = load_dataset(tmp_path / "mine")
    assert dataset.source == "folder" and dataset.extra["skipped"] == []
    assert dataset.cases[0].shape == [8, 32, 32] and dataset.cases[0].orientation == "RAS"


def test_prepare_command_reports_a_bad_source_in_one_line(tmp_path):
    result = CliRunner().invoke(main, ["prepare", "medseg", "--src", str(tmp_path), "--out",
                                       str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "tr_im.nii.gz" in result.output


def test_ricord_options_are_refused_for_other_sources(tmp_path):
    with pytest.raises(TfcovsegError, match=r"--label \(ricord\): not an option of folder"):
        prepare("folder", tmp_path, tmp_path / "out", labels=["Atelectasis"])
