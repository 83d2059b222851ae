"""Seconds per training step of one grid cell's network, paper family vs segmentation_models.

    python benchmarks/grid_cell_step.py [--arch unet] [--encoder resnet18] [--size 512]

Each family is built as the bench builds it (``tfcovseg.bench.models2d.build_cell_model``) and
trained on random 2 x SIZE x SIZE batches (the paper's batch 2); the median of the steps after
two warm-ups is printed, float32 on whatever this machine is.
"""

import argparse
import time

import tfcovseg  # noqa: F401  (selects tf_keras before TensorFlow loads)

# isort: split
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfcovseg.bench.grid import Cell  # noqa: E402
from tfcovseg.bench.models2d import build_cell_model  # noqa: E402
from tfcovseg.settings.bench import Architectures  # noqa: E402

WARM_UPS = 2
BATCH = 2  # Bizopoulos et al.


def step_seconds(networks: str, arch: str, encoder: str, size: int, steps: int) -> tuple:
    cell = Cell("lesions", arch, encoder, "random")
    model = build_cell_model(cell, Architectures(networks=networks), size)
    model.compile(tf.keras.optimizers.Adam(1e-3), "binary_crossentropy")
    x = np.random.default_rng(0).normal(size=(BATCH, size, size, 1)).astype(np.float32)
    y = (x > 1).astype(np.float32)
    times = []
    for _ in range(WARM_UPS + steps):
        started = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - started)
    return float(np.median(times[WARM_UPS:])), model.count_params()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="unet")
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    print(f"| family | network | parameters | s per step (2 x {args.size}x{args.size}) |")
    print("|---|---|---|---|")
    for networks in ("paper", "segmentation_models"):
        seconds, parameters = step_seconds(networks, args.arch, args.encoder, args.size, args.steps)
        print(f"| {networks} | {args.arch}-{args.encoder} | {parameters:,} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
