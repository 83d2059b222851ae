"""Synthetic bench folders for report and store tests (no training)."""

import numpy as np

from tfcovseg.bench import store
from tfcovseg.bench.grid import Cell
from tfcovseg.config import to_dict
from tfcovseg.settings.bench import BenchConfig

FILTERS = (7, 7, 3, 64)


def cell_result(cell: Cell, dice: float, parameters: int = 10_000_000, epochs: int = 3) -> dict:
    losses = list(np.linspace(0.9, 0.3, epochs) + dice / 10)
    return {
        "id": cell.id, "status": store.DONE,
        "cell": {"experiment": cell.experiment, "arch": cell.arch, "encoder": cell.encoder,
                 "init": cell.init},
        "image_size": 32, "config": to_dict(BenchConfig()),
        "metrics": {"sensitivity": 0.9, "specificity": 0.99, "dice": dice},
        "test_images": 10, "parameters": parameters, "train_images": 8, "validation_images": 2,
        "train_seconds_per_image": 0.5, "validation_seconds_per_image": 0.1,
        "train_loss": losses, "validation_loss": [v + 0.05 for v in losses],
        "best_epoch": epochs, "best_validation_loss": losses[-1] + 0.05,
    }


def cell_arrays(seed: int, with_volume: bool) -> dict:
    rng = np.random.default_rng(seed)
    mask = np.zeros((6, 16, 16), bool)
    mask[1:5, 4:12, 4:12] = True
    prediction = mask.copy()
    prediction[2:4, 3:6, 3:6] = True
    arrays = {
        "figure_image": rng.normal(size=(16, 16)).astype(np.float32),
        "figure_mask": mask[2], "figure_prediction": prediction[2],
        "histogram_images": rng.integers(0, 100, store.HISTOGRAM_BINS),
        "histogram_masks": rng.integers(0, 10, store.HISTOGRAM_BINS),
        "filters_before": rng.normal(scale=0.1, size=FILTERS).astype(np.float32),
        "filters_after": rng.normal(scale=0.1, size=FILTERS).astype(np.float32),
    }
    if with_volume:
        arrays.update(volume_mask=mask, volume_prediction=prediction)
    return arrays


def write_bench(bench_dir, cells) -> list[dict]:
    """Results and arrays for ``cells`` with varied Dice and parameter counts."""
    results = []
    for i, cell in enumerate(cells):
        result = cell_result(cell, dice=0.7 + 0.2 * ((i * 7) % 11) / 11, parameters=(5 + 3 * i) * 10**6)
        store.write_arrays(bench_dir, cell.id, cell_arrays(i, with_volume=cell.encoder == "resnet18"))
        store.write_result(bench_dir, result)
        results.append(result)
    return results
