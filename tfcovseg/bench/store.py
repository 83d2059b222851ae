"""The bench folder: one result file per cell, written atomically, plus its weights and arrays.

``BENCH_DIR/cells/<cell id>.json``       metrics, timings, loss curves, config (written last)
``BENCH_DIR/cells/<cell id>.weights.h5`` the kept (lowest validation loss) weights
``BENCH_DIR/cells/<cell id>.npz``        arrays for the figures (test image, prediction, filters)

A cell is finished when its result file says ``"status": "done"``; the result is written after
the weights and arrays, so a killed run leaves either a finished cell or none. A cell whose
ImageNet weights were unavailable gets a result with ``"status": "no_imagenet_weights"`` (shown
in the report) and is tried again by the next run. A cell converted from the authors' released
weights (``tfcovseg convert-grid``) has weights and ``"status": "released"``: not trained or tested
here, so it has no metrics (the report lists it in results.csv only).
"""

from pathlib import Path

import numpy as np

from tfcovseg.files import atomic_path, read_json_of_kind, write_json

CELLS_DIR = "cells"
DONE = "done"
NO_IMAGENET = "no_imagenet_weights"
RELEASED = "released"
WITH_WEIGHTS = (DONE, RELEASED)  # the statuses whose cell has a weights file
RESULT_KIND = "tfcovseg-bench-cell"
# Fig. 2 histograms in the arrays file, as the authors: 100 bins of normalised HU in [-2, 2]
HISTOGRAM_BINS = 100
HISTOGRAM_RANGE = (-2.0, 2.0)


def cell_dir(bench_dir) -> Path:
    return Path(bench_dir) / CELLS_DIR


def result_path(bench_dir, cell_id: str) -> Path:
    return cell_dir(bench_dir) / f"{cell_id}.json"


def weights_path(bench_dir, cell_id: str) -> Path:
    return cell_dir(bench_dir) / f"{cell_id}.weights.h5"


def arrays_path(bench_dir, cell_id: str) -> Path:
    return cell_dir(bench_dir) / f"{cell_id}.npz"


def write_result(bench_dir, result: dict) -> Path:
    path = result_path(bench_dir, result["id"])
    write_json(path, {"kind": RESULT_KIND, **result})
    return path


def _read(path: Path) -> dict:
    return read_json_of_kind(path, RESULT_KIND, "bench cell result",
                             hint="; delete it to rerun the cell")


def read_result(bench_dir, cell_id: str) -> dict | None:
    path = result_path(bench_dir, cell_id)
    return _read(path) if path.is_file() else None


def read_results(bench_dir) -> list[dict]:
    """Every cell result in the folder, sorted by cell id."""
    return [_read(p) for p in sorted(cell_dir(bench_dir).glob("*.json"))]


def is_finished(bench_dir, cell_id: str) -> bool:
    result = read_result(bench_dir, cell_id)
    return result is not None and result.get("status") == DONE


def write_arrays(bench_dir, cell_id: str, arrays: dict) -> None:
    with atomic_path(arrays_path(bench_dir, cell_id), suffix=".npz") as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)


def read_arrays(bench_dir, cell_id: str) -> dict:
    path = arrays_path(bench_dir, cell_id)
    if not path.is_file():
        return {}
    with np.load(path) as data:
        return {k: data[k] for k in data.files}
