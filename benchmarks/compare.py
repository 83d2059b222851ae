"""tfcovseg beside the PyTorch originals, side by side: one Markdown table (issue 13).

(a) the 3D U-Net training step (``unet3d()``, 95M parameters) at 1x18x112x112 (and the paper's
    stage 2, 1x20x256x256, with ``--full``): Keras float32 and mixed_bfloat16 vs the PyTorch
    reference (``reference_torch.py``) in float32, bf16 autocast and bf16 + channels_last_3d;
(b) the 2D grid cell, Unet-resnet18 at 2x512x512 (``tfcovseg.bench.models2d``: the ``paper``
    network) vs ``smp.Unet("resnet18", in_channels=1, classes=1)`` in the same precisions, per
    step and per epoch (training + validation, each side with its fastest step precision);
(c) the 3D input pipeline (stage 1: resize 18x112x112, augmentation on, batch 6; patch mode:
    32x128x128, batch 2) on NIfTI files written here (CT-sized phantoms and small phantoms),
    volumes/s uncached and cached, beside MONAI's Dataset / CacheDataset with equivalent
    transforms and beside what training consumes;
(d) whole-CT prediction in patch mode: seconds per CT, tfcovseg's sliding window vs MONAI's
    ``sliding_window_inference`` with the PyTorch reference network (overlap 0.5, Gaussian
    blending; a plain PyTorch window loop stands in when MONAI is not installed).

Every measurement runs in its own process (TensorFlow and torch in one process interfere),
ours then the peer's, back to back; times are medians over timed repeats after warm-ups. The
speed-up column is peer time / tfcovseg time (for rates: tfcovseg rate / peer rate): above 1,
tfcovseg is faster.

    python benchmarks/compare.py --quick          # about 10-15 minutes on 2 CPU cores
    python benchmarks/compare.py                  # more repeats, CT-sized volumes 300x512x512
    python benchmarks/compare.py --full           # and the paper's stage 2 (hours on a CPU)
    python benchmarks/compare.py --sections step3d --steps 5
"""

import argparse
import dataclasses
import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tfcovseg.settings.phantoms import Phantoms

HERE = Path(__file__).resolve().parent
SECTIONS = ("step3d", "step2d", "pipeline", "predict")
STAGES = {"stage 1": (1, 18, 112, 112), "stage 2": (1, 20, 256, 256)}  # Bressem et al., batch 1
KERAS_PRECISIONS = ("float32", "mixed_bfloat16")
TORCH_PRECISIONS = ("float32", "bfloat16", "bfloat16+channels_last")
# which Keras precision each PyTorch precision is compared with
PAIRS = {"float32": "float32", "bfloat16": "mixed_bfloat16", "bfloat16+channels_last": "mixed_bfloat16"}
GRID_BATCH, GRID_SIZE = 2, 512  # Bizopoulos et al.: batch 2, 512x512 slices
PIPELINE_SETTINGS = {  # name: (mode, size, batch); DESIGN.md's stage 1 and the default patch
    "stage 1: resize 18x112x112, batch 6": ("resize", (18, 112, 112), 6),
    "patch 32x128x128, batch 2": ("patch", (32, 128, 128), 2),
}
PAPER_GPU_VOLUMES_PER_S = (210 * 100 + 200 * 100) / (10 * 3600 + 49 * 60)  # paper: 10 h 49 min
GOALS = {"step3d": 1.5, "step2d": 1.3, "pipeline": 1.0, "consumption": 3.0}  # issue 13
# pipeline rates are timed over runs of whole passes holding at least this many volumes, so a
# prefetch buffer that already holds a short pass does not make it look instant (either side)
CHUNK_VOLUMES = 24


@dataclasses.dataclass(frozen=True)
class Scale:
    """How much each section measures: ``--quick``, the default, ``--full``."""

    steps3d: int  # timed 3D steps after one warm-up step
    steps2d: int
    epochs2d: int  # 2D epochs; the first (tracing, cache filling) is not timed
    slices_per_case: int  # 2D phantoms: 3 cases (2 train, 1 validation) of this many slices
    ct_shape: tuple  # the CT-sized phantoms of the pipeline
    ct_cases: int
    phantom_cases: int  # 64x128x128 phantoms of the pipeline
    pipeline_seconds: float  # each pipeline rate runs passes for at least this long
    predict_ct: tuple  # the CT predicted whole
    predict_window: tuple
    stages: tuple


QUICK = Scale(steps3d=2, steps2d=3, epochs2d=3, slices_per_case=4, ct_shape=(128, 512, 512),
              ct_cases=2, phantom_cases=6, pipeline_seconds=8.0, predict_ct=(24, 96, 96),
              predict_window=(16, 64, 64), stages=("stage 1",))
DEFAULT = Scale(steps3d=3, steps2d=5, epochs2d=4, slices_per_case=8, ct_shape=(300, 512, 512),
                ct_cases=4, phantom_cases=8, pipeline_seconds=20.0, predict_ct=(64, 256, 256),
                predict_window=(32, 128, 128), stages=("stage 1",))
FULL = dataclasses.replace(DEFAULT, predict_ct=(300, 512, 512), stages=tuple(STAGES))


def timed_calls(call, repeats: int, warmups: int = 1) -> list:
    """Wall seconds of ``repeats`` calls of ``call`` after ``warmups`` untimed ones."""
    for _ in range(warmups):
        call()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return seconds


def passes_per_chunk(per_pass: int) -> int:
    """How many passes of ``per_pass`` volumes one pipeline rate is timed over."""
    return max(1, -(-CHUNK_VOLUMES // max(1, per_pass)))


def summarise(values: list, **extra) -> dict:
    """A measurement's result: the median, every value, this process's peak RSS, ``extra``."""
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # kB on Linux
    return {"median": statistics.median(values), "values": values, "peak_rss_gb": peak_gb, **extra}


def window_starts(size: int, window: int, overlap: float) -> list:
    """Window starts along one axis, as ``tfcovseg.models.sliding_window.window_starts`` (NumPy:
    for the PyTorch side and for counting windows)."""
    span = max(size - window, 0)
    count = math.ceil(span / (window * (1.0 - overlap))) + 1
    return [int(s) for s in np.round(np.arange(count) * span / max(count - 1, 1))]


def window_count(shape, window, overlap: float) -> int:
    return math.prod(len(window_starts(n, w, overlap)) for n, w in zip(shape, window))


def run_job(job: dict, timeout: float, script: str = __file__) -> dict:
    """``job`` measured by ``script --one`` in a fresh process; its JSON result or an ``error``."""
    command = [sys.executable, str(Path(script).resolve()), "--one", json.dumps(job)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:.0f} s"}
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_one(job: dict) -> dict:
    """Run one job in this process (``--one``): tfcovseg's side or PyTorch's."""
    sys.path.insert(0, str(HERE))
    if job["side"] == "tfcovseg":
        import side_tfcovseg as side
    else:
        import side_torch as side
    return getattr(side, job["section"])(job)


# --- what to measure ---------------------------------------------------------------------


def step3d_rows(scale: Scale, run) -> list:
    rows = []
    for stage in scale.stages:
        shape = STAGES[stage]
        ours = {p: run({"section": "step3d", "side": "tfcovseg", "precision": p, "shape": shape,
                        "steps": scale.steps3d}) for p in KERAS_PRECISIONS}
        peers = {p: run({"section": "step3d", "side": "torch", "precision": p, "shape": shape,
                         "steps": scale.steps3d}) for p in TORCH_PRECISIONS}
        setting = f"3D step, {stage} {'x'.join(map(str, shape))}"
        rows += precision_rows(setting, ours, peers, "s/step", "step3d")
    return rows


def step2d_rows(scale: Scale, run, data: Path) -> list:
    shape = (GRID_BATCH, GRID_SIZE, GRID_SIZE)
    job = {"section": "step2d", "shape": shape, "steps": scale.steps2d}
    ours = {p: run({**job, "side": "tfcovseg", "precision": p}) for p in KERAS_PRECISIONS}
    peers = {p: run({**job, "side": "torch", "precision": p}) for p in TORCH_PRECISIONS}
    rows = precision_rows(f"2D step, Unet-resnet18 {'x'.join(map(str, shape))}", ours, peers,
                          "s/step", "step2d")
    epoch = {"section": "epoch2d", "data": str(data), "epochs": scale.epochs2d,
             "batch": GRID_BATCH}
    our_epoch = run({**epoch, "side": "tfcovseg", "precision": fastest(ours)})
    peer_epoch = run({**epoch, "side": "torch", "precision": fastest(peers)})
    note = (f"{our_epoch.get('train_slices', '?')} training + "
            f"{our_epoch.get('validation_slices', '?')} validation slices per epoch")
    rows.append(row("2D epoch (train + validation), each at its fastest step precision",
                    our_epoch, peer_epoch, "s/epoch", note, goal=GOALS["step2d"],
                    ours_label=fastest(ours), peer_label=fastest(peers)))
    return rows


def pipeline_rows(scale: Scale, run, datasets: dict, consumption: dict) -> list:
    rows = []
    for setting, (mode, size, batch) in PIPELINE_SETTINGS.items():
        for which, root in datasets.items():
            for cache in (False, True):
                job = {"section": "pipeline", "data": str(root), "mode": mode, "size": size,
                       "batch": batch, "cache": cache, "seconds": scale.pipeline_seconds}
                ours = run({**job, "side": "tfcovseg"})
                peer = run({**job, "side": "torch"})
                note = consumption_note(ours, consumption.get(mode))
                label = f"pipeline {setting}, {which}, {'cached' if cache else 'uncached'}"
                rows.append(row(label, ours, peer, "volumes/s", note, goal=GOALS["pipeline"],
                                peer_label="MONAI " + ("CacheDataset" if cache else "Dataset")))
    return rows


def predict_rows(scale: Scale, run, ct: Path) -> list:
    job = {"section": "predict", "ct": str(ct), "window": scale.predict_window, "overlap": 0.5,
           "spacing_mm": Phantoms().spacing}
    ours = run({**job, "side": "tfcovseg"})
    peer = run({**job, "side": "torch"})
    shape = "x".join(map(str, scale.predict_ct))
    window = "x".join(map(str, scale.predict_window))
    note = f"{ours.get('windows', '?')} windows of {window}, overlap 0.5, Gaussian, float32"
    return [row(f"whole-CT prediction, patch mode, {shape}", ours, peer, "s/CT", note,
                peer_label=peer.get("peer", "MONAI sliding_window_inference"))]


# --- the table ---------------------------------------------------------------------------


def precision_rows(setting: str, ours: dict, peers: dict, unit: str, goal_key: str) -> list:
    rows = [row(f"{setting}, {p}", ours[PAIRS[p]], peers[p], unit,
                ours_label=PAIRS[p], peer_label=p) for p in TORCH_PRECISIONS]
    rows.append(row(f"{setting}, fastest vs fastest", ours[fastest(ours)], peers[fastest(peers)],
                    unit, goal=GOALS[goal_key], ours_label=fastest(ours),
                    peer_label=fastest(peers)))
    return rows


def fastest(results: dict) -> str:
    """The precision with the lowest median time (the first one if every run failed)."""
    timed = {k: v["median"] for k, v in results.items() if "median" in v}
    return min(timed, key=timed.get) if timed else next(iter(results))


def row(what, ours, peer, unit, note="", goal=None, ours_label="", peer_label="") -> dict:
    return {"what": what, "ours": ours, "peer": peer, "unit": unit, "note": note, "goal": goal,
            "ours_label": ours_label, "peer_label": peer_label}


def speedup(r: dict):
    """Peer time / our time (for rates: our rate / peer rate), or None."""
    ours, peer = r["ours"].get("median"), r["peer"].get("median")
    if not ours or not peer:
        return None
    return ours / peer if r["unit"] == "volumes/s" else peer / ours


def consumption_note(ours: dict, consumes) -> str:
    if consumes is None or "median" not in ours:
        return ""
    return (f"{ours['median'] / consumes:.0f}x what training here consumes "
            f"({consumes:.3f} volumes/s); {ours['median'] / PAPER_GPU_VOLUMES_PER_S:.1f}x "
            f"the paper's GPU run ({PAPER_GPU_VOLUMES_PER_S:.2f} volumes/s)")


def cell(result: dict, unit: str, label: str) -> str:
    if "median" in result:
        spread = ""
        if len(result.get("values", [])) > 1:
            spread = f" ({min(result['values']):.3g}-{max(result['values']):.3g})"
        return f"{result['median']:.3g} {unit}{spread}" + (f" [{label}]" if label else "")
    return result.get("unavailable") or f"failed: {result.get('error', '?')}"


def markdown(rows: list) -> str:
    lines = ["| measurement | tfcovseg | peer | speed-up (peer time / tfcovseg) | notes |",
             "|---|---|---|---|---|"]
    for r in rows:
        ratio = speedup(r)
        ratio_text = "" if ratio is None else f"**{ratio:.2f}x**"
        if ratio is not None and r["goal"] is not None:
            ratio_text += f" (goal {r['goal']}x: {'met' if ratio >= r['goal'] else 'missed'})"
        lines.append(f"| {r['what']} | {cell(r['ours'], r['unit'], r['ours_label'])} | "
                     f"{cell(r['peer'], r['unit'], r['peer_label'])} | {ratio_text} | {r['note']} |")
    return "\n".join(lines)


# --- data written for the comparison -----------------------------------------------------


def write_data(root: Path, scale: Scale, sections) -> dict:
    """Phantom datasets (NIfTI, prepared layout) and the CT to predict, as the sections need."""
    from tfcovseg.io.phantoms import phantom, synthesize_dataset

    paths = {}
    if "step2d" in sections:
        slices = Phantoms(cases=3, shape=(scale.slices_per_case, 128, 128))
        paths["grid"] = synthesize_dataset(root / "grid", slices).root
    if "pipeline" in sections:
        paths["pipeline"] = {
            f"{scale.ct_cases} CTs {'x'.join(map(str, scale.ct_shape))}":
                synthesize_dataset(root / "ct", Phantoms(cases=scale.ct_cases, shape=scale.ct_shape)).root,
            f"{scale.phantom_cases} phantoms 64x128x128":
                synthesize_dataset(root / "phantoms", Phantoms(cases=scale.phantom_cases)).root,
        }
    if "predict" in sections:
        image, _, _ = phantom(np.random.default_rng([0, 0]), scale.predict_ct)
        paths["ct"] = root / "predict_ct.npy"
        np.save(paths["ct"], np.rint(image).astype(np.float32))
    return paths


def training_consumption(rows: list) -> dict:
    """Volumes/s training takes here, per pipeline mode, from the fastest stage-1 step of ours.

    The step was timed at batch 1 and is taken as linear in batch and in voxels (patches of
    32x128x128 have 2.3x the voxels of 18x112x112).
    """
    for r in rows:
        if r["what"].startswith("3D step, stage 1") and "fastest" in r["what"]:
            step = r["ours"].get("median")
            if step:
                patch_voxels = 32 * 128 * 128 / (18 * 112 * 112)
                return {"resize": 1 / step, "patch": 1 / (step * patch_voxels)}
    return {}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="fewer repeats, smaller volumes (minutes)")
    size.add_argument("--full", action="store_true", help="also stage 2 and a 300x512x512 CT (hours on a CPU)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--steps", type=int, help="timed training steps (3D and 2D)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per measurement")
    parser.add_argument("--json", help="also write every measurement to this file")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(json.loads(args.one))))
        return
    scale = QUICK if args.quick else FULL if args.full else DEFAULT
    if args.steps:
        scale = dataclasses.replace(scale, steps3d=args.steps, steps2d=args.steps)

    def run(job):
        result = run_job(job, args.timeout)
        print(json.dumps({"job": job, "result": result}), file=sys.stderr, flush=True)
        return result

    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="tfcovseg-compare-") as tmp:
        data = write_data(Path(tmp), scale, args.sections)
        if "step3d" in args.sections:
            rows += step3d_rows(scale, run)
        if "step2d" in args.sections:
            rows += step2d_rows(scale, run, data["grid"])
        if "pipeline" in args.sections:
            rows += pipeline_rows(scale, run, data["pipeline"], training_consumption(rows))
        if "predict" in args.sections:
            rows += predict_rows(scale, run, data["ct"])
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    print(markdown(rows))
    print(f"\n({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
