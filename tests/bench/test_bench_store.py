import json

import numpy as np
import pytest
from synthetic_results import cell_arrays, cell_result

from tfcovseg.bench import store
from tfcovseg.bench.grid import Cell
from tfcovseg.errors import TfcovsegError

CELL = Cell("lungs", "unet", "resnet18", "random")


def test_result_round_trip_and_finished_flag(tmp_path):
    assert store.read_result(tmp_path, CELL.id) is None
    assert not store.is_finished(tmp_path, CELL.id)
    store.write_result(tmp_path, cell_result(CELL, 0.9))
    assert store.read_result(tmp_path, CELL.id)["metrics"]["dice"] == 0.9
    assert store.is_finished(tmp_path, CELL.id)
    assert [r["id"] for r in store.read_results(tmp_path)] == [CELL.id]


def test_writes_leave_no_temporary_files(tmp_path):
    store.write_result(tmp_path, cell_result(CELL, 0.9))
    store.write_arrays(tmp_path, CELL.id, cell_arrays(0, with_volume=True))
    names = sorted(p.name for p in store.cell_dir(tmp_path).iterdir())
    assert names == [f"{CELL.id}.json", f"{CELL.id}.npz"]


def test_cells_without_imagenet_weights_are_not_finished(tmp_path):
    store.write_result(tmp_path, {"id": CELL.id, "status": store.NO_IMAGENET, "reason": "offline"})
    assert not store.is_finished(tmp_path, CELL.id)


def test_arrays_round_trip(tmp_path):
    arrays = cell_arrays(0, with_volume=True)
    store.write_arrays(tmp_path, CELL.id, arrays)
    back = store.read_arrays(tmp_path, CELL.id)
    assert set(back) == set(arrays)
    np.testing.assert_array_equal(back["volume_prediction"], arrays["volume_prediction"])
    assert store.read_arrays(tmp_path, "missing") == {}


def test_corrupt_result_names_the_file(tmp_path):
    path = store.result_path(tmp_path, CELL.id)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(TfcovsegError, match=f"{CELL.id}.json.*corrupt"):
        store.read_result(tmp_path, CELL.id)
    path.write_text(json.dumps({"kind": "something-else"}))
    with pytest.raises(TfcovsegError, match="not a bench cell result"):
        store.read_results(tmp_path)
