"""Grid cells as whole-CT tools (issue 12, item 5): train one cell per experiment on phantom
slices, then segment held-out phantom CTs with them as ``predict``/``evaluate`` do.

    python benchmarks/grid_cells_on_ct.py --out /tmp/cells_ct [--epochs 6] [--size 128]

Trains Unet-resnet18 (random init, the paper's network) for ``lungs``, ``lesions`` and
``lesions_in_lungs`` with ``tfcovseg bench`` on 10 phantoms (8 train, 2 validation; seed 0),
then scores 6 other phantoms (seed 1) as whole CTs: the lung cell's Dice against the true lung
masks, and the lesion cells' per-case Dice and NSD through ``tfcovseg.infer.evaluate`` (the
lesions_in_lungs cell once on the true lung masks, once on the lung cell's lungs,
``--lung-model``), with the seconds per CT. Prints a Markdown table.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import yaml

import tfcovseg  # noqa: F401  (selects tf_keras before TensorFlow)
from tfcovseg.bench import store
from tfcovseg.bench.run import run_bench
from tfcovseg.infer.evaluate import evaluate
from tfcovseg.infer.predictor import load_lung_predictor
from tfcovseg.io.manifest import load_dataset
from tfcovseg.io.nifti import read_volume
from tfcovseg.io.phantoms import synthesize_dataset
from tfcovseg.metrics import dice
from tfcovseg.settings.phantoms import Phantoms

SHAPE = (32, 128, 128)
EXPERIMENTS = ("lungs", "lesions", "lesions_in_lungs")


def bench_config(out: Path, epochs: int, size: int) -> Path:
    config = {
        "name": "cells_on_ct", "out": str(out / "bench"),
        "data": {"train": str(out / "train_phantoms"), "test": None, "validation_cases": 2,
                 "test_cases": 1,
                 "phantoms": {"cases": 11, "seed": 0, "shape": list(SHAPE)}},
        "pipeline": {"size": [size, size]},
        "grid": {"archs": ["unet"], "encoders": ["resnet18"], "inits": ["random"],
                 "experiments": list(EXPERIMENTS)},
        "training": {"epochs": epochs, "batch_size": 4},
    }
    path = out / "bench.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def cell_file(out: Path, experiment: str) -> Path:
    return store.result_path(out / "bench", f"{experiment}-unet-resnet18-random")


def lung_dice(lung_cell: Path, dataset) -> list:
    predictor = load_lung_predictor(lung_cell)
    scores = []
    for case in dataset.labelled:
        volume = read_volume(dataset.path(case.image))
        found = predictor(volume.array, volume.spacing) > 0.5
        scores.append(dice(found, read_volume(dataset.path(case.lung)).array > 0))
    return scores


def timed_evaluation(out: Path, name: str, **kwargs) -> tuple:
    start = time.perf_counter()
    summary = evaluate(out=out / "evaluation" / name, **kwargs)
    seconds = time.perf_counter() - start
    by_metric = {row["metric"]: row for row in summary}
    return by_metric["dice"], by_metric["nsd"], seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    run_bench(config=str(bench_config(args.out, args.epochs, args.size)))
    trained = time.perf_counter() - start
    test_root = args.out / "test_phantoms"
    if not (test_root / "dataset.json").is_file():
        synthesize_dataset(test_root, Phantoms(cases=6, seed=1, shape=SHAPE))
    test = load_dataset(test_root)
    cases = len(test.labelled)
    lungs = lung_dice(cell_file(args.out, "lungs"), test)
    rows = [f"| lungs cell vs true lung masks | {np.mean(lungs):.3f} (min {np.min(lungs):.3f}) "
            "| | |"]
    for name, folder, kwargs in [
        ("lesions", "lesions", {"model_dir": cell_file(args.out, "lesions")}),
        ("lesions_in_lungs, true lungs", "lesions_in_lungs-true-lungs",
         {"model_dir": cell_file(args.out, "lesions_in_lungs")}),
        ("lesions_in_lungs, --lung-model", "lesions_in_lungs-lung-model",
         {"model_dir": cell_file(args.out, "lesions_in_lungs"),
          "lung_model": cell_file(args.out, "lungs")}),
    ]:
        dice_row, nsd_row, seconds = timed_evaluation(args.out, folder, data=test_root, **kwargs)
        rows.append(f"| {name} | {dice_row['mean']:.3f} +- {dice_row['std']:.3f} "
                    f"(n {dice_row['n']}) | {nsd_row['mean']:.3f} | {seconds / cases:.1f} |")
    print(f"\n{args.epochs} epochs at {args.size}x{args.size}, 3 cells trained in "
          f"{trained / 60:.1f} min; {cases} held-out phantom CTs of {'x'.join(map(str, SHAPE))}\n")
    print("| Unet-resnet18 cell on whole CTs | Dice | NSD (3 mm) | s per CT |")
    print("|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
