import json

import pytest

from tfcovseg.errors import DataError, TfcovsegError
from tfcovseg.rundir import InputSpec, Position, RunFolder, RunInfo
from tfcovseg.settings.data import Intensity


def test_run_info_round_trips(tmp_path):
    info = RunInfo(
        model={"classes": 2, "skip_norm": "batch"},
        input=InputSpec(mode="patch", size=(8, 32, 32), intensity=Intensity(clip=(-1000.0, 400.0))),
        weights="checkpoints/best.weights.h5",
        dataset=str(tmp_path / "data"),
    )
    RunFolder(tmp_path).write_info(info)
    assert RunFolder(tmp_path).read_info() == info


def test_a_folder_that_is_not_a_run_is_refused(tmp_path):
    with pytest.raises(TfcovsegError, match="not a tfcovseg run"):
        RunFolder(tmp_path).read_info()
    (tmp_path / "run.json").write_text(json.dumps({"kind": "something-else"}))
    with pytest.raises(TfcovsegError, match="kind is 'something-else'"):
        RunFolder(tmp_path).read_info()


def test_the_training_dataset_must_still_be_where_the_run_recorded_it(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.write_info(RunInfo(model={}, input=InputSpec()))
    with pytest.raises(DataError, match="does not record its dataset"):
        run.trained_dataset()
    run.write_info(RunInfo(model={}, input=InputSpec(), dataset=str(tmp_path / "moved")))
    with pytest.raises(DataError, match="moved is not there any more: give --data"):
        run.trained_dataset()
    (tmp_path / "moved").mkdir()
    assert run.trained_dataset() == tmp_path / "moved"


def test_position_history_split_and_summary_round_trip(tmp_path):
    run = RunFolder(tmp_path)
    assert run.read_position() == Position() and run.read_history() == [] and run.read_summary() == {}
    position = Position(stage=1, phase=0, epoch=3, best={"stage1/2": 0.5}, checkpoint="c")
    run.write_position(position)
    row = {"stage": "s", "phase": "1", "epoch": "1", "lr": "0.01", "loss": "1", "val_loss": "",
           "val_dice": "0.5", "seconds": "2.0"}
    run.write_history([row])
    run.write_split({"train": ["a"], "tuning": ["b"]})
    assert run.read_position() == position and run.read_history() == [row]
    assert run.read_split()["tuning"] == ["b"]


def test_a_run_without_weights_says_so(tmp_path):
    from tfcovseg.models.runs import load_run_model

    RunFolder(tmp_path).write_info(RunInfo(model={}, input=InputSpec()))
    with pytest.raises(TfcovsegError, match="no weights file yet"):
        load_run_model(tmp_path)
