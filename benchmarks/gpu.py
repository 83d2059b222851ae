"""The GPU harness (issue 13): the paper's settings on a CUDA GPU, and what the paper's runs would take.

- 3D step (``unet3d()``, 95M) at both paper stages (batch 6 at 18x112x112, batch 1 at
  20x256x256): Keras mixed_float16 with and without XLA (``jit_compile``) beside the PyTorch
  reference (``reference_torch.py``) with AMP float16 + channels_last_3d; peak GPU memory
  (``tf.config.experimental.get_memory_info`` / ``torch.cuda.max_memory_allocated``).
- 2D grid cell (Unet-resnet18, 512x512, batch 2): seconds per epoch of ``tfcovseg.bench.cell``'s
  training on 80 + 20 phantom slices (MedSeg's split), beside smp's step with AMP.
- Packing: K cells trained at once on the one GPU (K processes, memory growth on; what Ray does
  with fractional GPUs, ``num_gpus=1/K``): cells per hour for each K.
- Projections: the paper's 3D recipe (10 + 200 epochs of stage 1 on 100 volumes at batch 6, 200
  epochs of stage 2 at batch 1; the paper: 10 h 49 min on one RTX 2080 Ti) and the 600-cell grid
  (200 epochs of 80 + 20 slices each; the paper: about two weeks), training steps only.

Every measurement runs in its own process. Without a GPU it says so and exits with status 2.

    python benchmarks/gpu.py                     # about 10 minutes on one GPU
    python benchmarks/gpu.py --steps 10 --pack 1 2 4 8
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from compare import GRID_BATCH, GRID_SIZE, run_job, summarise, timed_calls

PAPER_STAGES = {"stage 1": (6, 18, 112, 112), "stage 2": (1, 20, 256, 256)}  # Bressem et al.
PAPER_3D_SECONDS = 10 * 3600 + 49 * 60  # 10 h 49 min on one RTX 2080 Ti
PAPER_3D_STEPS = {"stage 1": (10 + 200) * math.ceil(100 / 6), "stage 2": 200 * 100}
PAPER_GRID_SECONDS = 14 * 24 * 3600  # "about two weeks"
GRID_CELLS, GRID_EPOCHS = 600, 200  # Bizopoulos et al.
GRID_SLICES = (80, 20)  # MedSeg: training and validation slices per epoch
NO_GPU_EXIT = 2


def gpu_names() -> list:
    """The CUDA GPUs this process may use (none when CUDA_VISIBLE_DEVICES hides them all)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return []
    if shutil.which("nvidia-smi") is None:
        return []
    done = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                          capture_output=True, text=True)
    return [line.strip() for line in done.stdout.splitlines() if line.strip()] if done.returncode == 0 else []


# --- measurements, one per process (--one) ----------------------------------------------


def keras_step3d(job: dict) -> dict:
    import tensorflow as tf  # after compare, which imports tfcovseg (Keras 2)

    from tfcovseg.models import unet3d

    _memory_growth(tf)
    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    batch, *size = job["shape"]
    model = unet3d()
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), jit_compile=job["xla"],
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    image, label = _random_volumes(batch, size)
    tf.config.experimental.reset_memory_stats("GPU:0")
    seconds = timed_calls(lambda: model.train_on_batch(image, label), job["steps"], warmups=2)
    peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 1024**3
    return summarise(seconds, peak_gpu_gb=peak)


def torch_step3d(job: dict) -> dict:
    sys.modules.setdefault("triton", None)
    import reference_torch
    import torch

    batch, *size = job["shape"]
    model = reference_torch.DynamicUnet3D().cuda().to(memory_format=torch.channels_last_3d).train()
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    scaler = torch.amp.GradScaler("cuda")
    image, label = _random_volumes(batch, size)
    x = torch.from_numpy(image[..., 0]).cuda()[:, None].repeat(1, 3, 1, 1, 1)
    x = x.contiguous(memory_format=torch.channels_last_3d)
    y = torch.from_numpy(label).long().cuda()

    def step():
        with torch.autocast("cuda", dtype=torch.float16):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        torch.cuda.synchronize()

    step()
    torch.cuda.reset_peak_memory_stats()
    seconds = timed_calls(step, job["steps"], warmups=1)
    return summarise(seconds, peak_gpu_gb=torch.cuda.max_memory_allocated() / 1024**3)


def keras_epoch2d(job: dict) -> dict:
    """Seconds per epoch of the grid cell's training loop (the first epoch not timed)."""
    import tensorflow as tf

    _memory_growth(tf)
    import side_tfcovseg

    return side_tfcovseg.epoch2d(job)


def torch_step2d(job: dict) -> dict:
    sys.modules.setdefault("triton", None)
    import segmentation_models_pytorch as smp
    import torch

    model = smp.Unet("resnet18", encoder_weights=None, in_channels=1, classes=1).cuda()
    model = model.to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    scaler = torch.amp.GradScaler("cuda")
    image = torch.randn(GRID_BATCH, 1, GRID_SIZE, GRID_SIZE, device="cuda")
    image = image.contiguous(memory_format=torch.channels_last)
    mask = (torch.rand(GRID_BATCH, 1, GRID_SIZE, GRID_SIZE, device="cuda") > 0.9).float()

    def step():
        with torch.autocast("cuda", dtype=torch.float16):
            p = torch.sigmoid(model(image).float())
            loss = 1 - 2 * (mask * p).sum() / ((mask * mask).sum() + (p * p).sum() + 1e-5)
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        torch.cuda.synchronize()

    return summarise(timed_calls(step, job["steps"], warmups=2))


MEASUREMENTS = {"keras_step3d": keras_step3d, "torch_step3d": torch_step3d,
                "keras_epoch2d": keras_epoch2d, "torch_step2d": torch_step2d}


def _memory_growth(tf) -> None:
    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)


def _random_volumes(batch, size):
    import numpy as np

    rng = np.random.default_rng(0)
    image = rng.random((batch, *size, 1), dtype=np.float32)
    return image, (rng.random((batch, *size)) > 0.9).astype(np.int32)


# --- the report ---------------------------------------------------------------------------


def packed_cells_per_hour(job: dict, copies: int, timeout: float) -> dict:
    """``copies`` grid cells trained at once (one process each): epochs/s of all, cells/hour."""
    command = [sys.executable, str(Path(__file__).resolve()), "--one", json.dumps(job)]
    start = time.perf_counter()
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(copies)]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=timeout)
        if process.returncode != 0:
            return {"error": (err.strip().splitlines() or [f"exit {process.returncode}"])[-1]}
        results.append(json.loads(out.strip().splitlines()[-1]))
    epoch = max(r["median"] for r in results)  # each process's epoch while all run at once
    cells_per_hour = copies * 3600 / (epoch * GRID_EPOCHS)
    return {"copies": copies, "epoch_s": epoch, "cells_per_hour": cells_per_hour,
            "wall_s": time.perf_counter() - start}


def report(steps3d: dict, epoch2d: dict, smp2d: dict, packing: list) -> str:
    lines = ["| 3D step (95M U-Net) | batch x D x H x W | s/step | peak GPU memory |", "|---|---|---|---|"]
    for (name, stage), result in steps3d.items():
        shape = "x".join(map(str, PAPER_STAGES[stage]))
        lines.append(f"| {name}, {stage} | {shape} | {_value(result, 'median', '.3f')} | "
                     f"{_value(result, 'peak_gpu_gb', '.1f')} GB |")
    lines += ["", f"2D cell (Unet-resnet18 512x512, batch 2): {_value(epoch2d, 'median', '.1f')} s per "
              f"epoch of {GRID_SLICES[0]} + {GRID_SLICES[1]} slices; smp AMP step "
              f"{_value(smp2d, 'median', '.3f')} s (x {GRID_SLICES[0] // GRID_BATCH} steps = "
              f"{smp2d.get('median', float('nan')) * GRID_SLICES[0] / GRID_BATCH:.1f} s of training per epoch)", ""]
    lines += ["| cells at once | s per epoch (each) | cells per hour | 600-cell grid |", "|---|---|---|---|"]
    for result in packing:
        if "error" in result:
            lines.append(f"| ? | failed: {result['error']} | | |")
            continue
        grid_days = GRID_CELLS / result["cells_per_hour"] / 24
        lines.append(f"| {result['copies']} | {result['epoch_s']:.1f} | {result['cells_per_hour']:.2f} | "
                     f"{grid_days:.1f} days (paper: {PAPER_GRID_SECONDS / 86400:.0f}) |")
    lines += ["", projection_3d(steps3d)]
    return "\n".join(lines)


def projection_3d(steps3d: dict) -> str:
    """The paper's 3D recipe at the fastest measured Keras step of each stage (steps only)."""
    best = {}
    for (name, stage), result in steps3d.items():
        if name.startswith("Keras") and "median" in result:
            best[stage] = min(best.get(stage, math.inf), result["median"])
    if len(best) < len(PAPER_STAGES):
        return "3D recipe: not projected (a stage failed)"
    seconds = sum(PAPER_3D_STEPS[stage] * best[stage] for stage in PAPER_STAGES)
    return (f"3D recipe ({PAPER_3D_STEPS['stage 1']} stage-1 + {PAPER_3D_STEPS['stage 2']} stage-2 "
            f"steps): {seconds / 3600:.1f} h of training steps (paper: {PAPER_3D_SECONDS / 3600:.1f} h "
            f"on an RTX 2080 Ti, with validation and data loading)")


def _value(result: dict, key: str, fmt: str) -> str:
    return format(result[key], fmt) if key in result else f"failed: {result.get('error', '?')}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5, help="timed training steps")
    parser.add_argument("--epochs", type=int, default=3, help="2D epochs per cell (the first untimed)")
    parser.add_argument("--pack", type=int, nargs="+", default=[1, 2, 4], help="cells at once")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per measurement")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        job = json.loads(args.one)
        print(json.dumps(MEASUREMENTS[job["measure"]](job)))
        return
    gpus = gpu_names()
    if not gpus:
        print("benchmarks/gpu.py: no CUDA GPU visible (nvidia-smi lists none, or "
              "CUDA_VISIBLE_DEVICES hides them); it measures the paper's settings on a GPU. "
              "On a CPU, run benchmarks/compare.py.", file=sys.stderr)
        sys.exit(NO_GPU_EXIT)
    print(f"GPU: {', '.join(gpus)}", flush=True)

    def run(job):
        result = run_job(job, args.timeout, script=__file__)
        print(json.dumps({"job": job, "result": result}), file=sys.stderr, flush=True)
        return result

    steps3d = {}
    for stage, shape in PAPER_STAGES.items():
        for xla in (False, True):
            name = f"Keras mixed_float16{' + XLA' if xla else ''}"
            steps3d[name, stage] = run({"measure": "keras_step3d", "shape": shape, "xla": xla,
                                        "steps": args.steps})
        steps3d["PyTorch AMP + channels_last_3d", stage] = run(
            {"measure": "torch_step3d", "shape": shape, "steps": args.steps})
    with tempfile.TemporaryDirectory(prefix="tfcovseg-gpu-") as tmp:
        from tfcovseg.io.phantoms import synthesize_dataset
        from tfcovseg.settings.phantoms import Phantoms

        # 4 training cases + 1 validation case of 20 slices: MedSeg's 80 + 20 per epoch
        data = synthesize_dataset(Path(tmp) / "grid", Phantoms(cases=5, shape=(20, 128, 128))).root
        cell = {"measure": "keras_epoch2d", "data": str(data), "epochs": args.epochs,
                "batch": GRID_BATCH, "precision": "auto", "train_cases": 4}
        epoch2d = run(cell)
        smp2d = run({"measure": "torch_step2d", "steps": args.steps})
        packing = [packed_cells_per_hour(cell, k, args.timeout) for k in args.pack]
    print(report(steps3d, epoch2d, smp2d, packing))


if __name__ == "__main__":
    main()
