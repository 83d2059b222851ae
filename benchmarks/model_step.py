"""Training-step time and peak memory of the 3D U-Net, Keras vs the PyTorch reference.

The paper's two stages (Bressem et al.: batch 6 at 18x112x112, batch 1 at 20x256x256), Keras in
float32 and mixed_bfloat16, PyTorch (reference_torch.py) in float32 and bf16 autocast. Each
configuration runs in its own process, so peak RSS (``resource.getrusage``) is its own.

    python benchmarks/model_step.py                 # everything, prints a Markdown table
    python benchmarks/model_step.py --steps 5 --frameworks keras
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

STAGES = {"stage1": (6, (18, 112, 112)), "stage2": (1, (20, 256, 256))}
PRECISIONS = {"keras": ("float32", "mixed_bfloat16"), "torch": ("float32", "bfloat16")}
CLASSES = 2


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def random_batch(batch, size, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    image = rng.random((batch, *size, 1), dtype=np.float32)
    label = (rng.random((batch, *size)) > 0.9).astype(np.int32)
    return image, label


def timed(step, steps):
    """Wall and process-CPU seconds of ``steps`` calls after one warm-up call (graph tracing).

    On a shared machine the wall time grows with the load; CPU seconds (all threads) much less.
    """
    step()
    wall, cpu = [], []
    for _ in range(steps):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def keras_step_times(batch, size, precision, steps):
    from tfcovseg.models import unet3d  # first: selects Keras 2 before TensorFlow loads

    # isort: split
    import tensorflow as tf

    tf.keras.mixed_precision.set_global_policy(precision)
    model = unet3d()
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    image, label = random_batch(batch, size)
    return timed(lambda: model.train_on_batch(image, label), steps)


def torch_step_times(batch, size, precision, steps):
    sys.path.insert(0, str(Path(__file__).parent))
    import reference_torch  # noqa: F401  (keeps triton out before torch loads)
    import torch

    model = reference_torch.DynamicUnet3D().train()
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    image, label = random_batch(batch, size)
    image = torch.from_numpy(image.transpose(0, 4, 1, 2, 3).copy()).repeat(1, 3, 1, 1, 1)
    label = torch.from_numpy(label).long()

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16"):
            loss = torch.nn.functional.cross_entropy(model(image).float(), label)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return timed(step, steps)


def run_one(framework, stage, precision, steps) -> dict:
    batch, size = STAGES[stage]
    measure = keras_step_times if framework == "keras" else torch_step_times
    wall, cpu = measure(batch, size, precision, steps)
    return {"framework": framework, "stage": stage, "precision": precision,
            "step_s": statistics.median(wall), "cpu_s": statistics.median(cpu),
            "peak_rss_mb": peak_rss_mb()}


def run_in_subprocess(framework, stage, precision, steps, timeout) -> dict:
    command = [sys.executable, __file__, "--one", framework, stage, precision, "--steps", str(steps)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"framework": framework, "stage": stage, "precision": precision,
                "error": f"over {timeout} s"}
    if done.returncode != 0:
        return {"framework": framework, "stage": stage, "precision": precision,
                "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def markdown(rows) -> str:
    lines = ["| framework | stage | batch x D x H x W | precision | step wall (s) | step CPU (s) | peak RSS (GB) |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        batch, size = STAGES[row["stage"]]
        shape = " x ".join(map(str, (batch, *size)))
        if "error" in row:
            lines.append(f"| {row['framework']} | {row['stage']} | {shape} | {row['precision']} | failed: {row['error']} | | |")
        else:
            lines.append(f"| {row['framework']} | {row['stage']} | {shape} | {row['precision']} | "
                         f"{row['step_s']:.2f} | {row['cpu_s']:.2f} | {row['peak_rss_mb'] / 1024:.1f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    parser.add_argument("--frameworks", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS))
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES))
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per configuration")
    parser.add_argument("--one", nargs=3, metavar=("FRAMEWORK", "STAGE", "PRECISION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(*args.one, args.steps)))
        return
    rows = []
    for framework in args.frameworks:
        for stage in args.stages:
            for precision in PRECISIONS[framework]:
                rows.append(run_in_subprocess(framework, stage, precision, args.steps, args.timeout))
                print(rows[-1], file=sys.stderr, flush=True)
    print(markdown(rows))


if __name__ == "__main__":
    main()
