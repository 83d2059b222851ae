import json

import pytest

from tfcovseg.errors import TfcovsegError
from tfcovseg.rundir import InputSpec, RunInfo, load_model, read_run_info, write_run_info
from tfcovseg.settings.data import Intensity


def test_run_info_round_trips(tmp_path):
    info = RunInfo(
        model={"classes": 2, "skip_norm": "batch"},
        input=InputSpec(mode="patch", size=(8, 32, 32), intensity=Intensity(clip=(-1000.0, 400.0))),
        weights="checkpoints/best.weights.h5",
    )
    write_run_info(tmp_path, info)
    assert read_run_info(tmp_path) == info


def test_a_folder_that_is_not_a_run_is_refused(tmp_path):
    with pytest.raises(TfcovsegError, match="not a tfcovseg run"):
        read_run_info(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"kind": "something-else"}))
    with pytest.raises(TfcovsegError, match="kind is 'something-else'"):
        read_run_info(tmp_path)


def test_a_run_without_weights_says_so(tmp_path):
    write_run_info(tmp_path, RunInfo(model={}, input=InputSpec()))
    with pytest.raises(TfcovsegError, match="no weights file yet"):
        load_model(tmp_path)
