"""Where the 3D U-Net's training step spends its time: TensorFlow's profiler, summed per op and layer.

A few ``train_on_batch`` steps of ``unet3d`` (after a warm-up step that traces the graph) run
between ``tf.profiler.experimental.start`` and ``stop``; the trace (``*.xplane.pb``) is read with
TensorFlow's own XSpace proto and every executor op event (``layer/.../Op:OpType`` on the
``tf_Compute`` threads) is summed by op type and by layer (forward and gradient ops of a layer
together; ``gradient_tape/`` stripped). Shares are of the summed op time, which equals the
step's wall time when the executor runs one op at a time (two inter-op threads may overlap a
little).

    python benchmarks/profile_step.py                    # full width, 1x18x112x112, 2 steps
    python benchmarks/profile_step.py --width 0.25 --top 15
"""

import argparse
import collections
import glob
import json
import tempfile
import time

import numpy as np

GRADIENT_PREFIX = "gradient_tape/"
OPTIMIZER_PREFIXES = ("Adam/", "SGD/")
SHAPE = (1, 18, 112, 112)  # paper stage 1 size at batch 1


def profile(width: float, shape, steps: int, precision: str, logdir: str, inter_op: int = 0) -> dict:
    """Wall and CPU seconds per step and op time per op type and per layer, in seconds per step.

    ``inter_op``: TensorFlow's inter-op threads (0: its default); 1 runs one op at a time, so
    each op's time is its own.
    """
    from tfcovseg.models import unet3d  # first: selects Keras 2 before TensorFlow loads

    # isort: split
    import tensorflow as tf

    tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    tf.keras.mixed_precision.set_global_policy(precision)
    model = unet3d(width=width)
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    image = rng.random((shape[0], *shape[1:], 1), dtype=np.float32)
    label = (rng.random(shape) > 0.9).astype(np.int32)
    model.train_on_batch(image, label)
    tf.profiler.experimental.start(logdir)
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        model.train_on_batch(image, label)
    wall = (time.perf_counter() - start) / steps
    cpu = (time.process_time() - start_cpu) / steps
    tf.profiler.experimental.stop()
    by_type, by_layer = op_times(latest_trace(logdir), [layer.name for layer in model.layers])
    return {"wall_s": wall, "cpu_s": cpu, "by_type": {k: v / steps for k, v in by_type.items()},
            "by_layer": {k: v / steps for k, v in by_layer.items()}}


def latest_trace(logdir: str) -> str:
    return sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1]


def op_times(path: str, layer_names) -> tuple[dict, dict]:
    """Seconds of executor op events summed by op type and by layer (or "optimizer", "other")."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(path, "rb") as file:
        space.ParseFromString(file.read())
    layers = set(layer_names)
    by_type, by_layer = collections.Counter(), collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" not in name or "::" in name:  # ExecutorState::Process etc. contain ops
                    continue
                op_name, op_type = name.rsplit(":", 1)
                seconds = event.duration_ps * 1e-12
                by_type[op_type] += seconds
                by_layer[layer_of(op_name, layers)] += seconds
    return dict(by_type), dict(by_layer)


def layer_of(op_name: str, layers) -> str:
    """The Keras layer an op belongs to (``unet3d/head_res_conv1/Conv3D`` -> ``head_res_conv1``)."""
    if op_name.startswith(OPTIMIZER_PREFIXES):
        return "optimizer"
    parts = op_name.removeprefix(GRADIENT_PREFIX).split("/")
    for part in parts[:3]:
        if part in layers:
            return part
    return "other"


def markdown(result: dict, top: int) -> str:
    total = sum(result["by_type"].values())
    lines = [f"step wall {result['wall_s']:.2f} s, CPU {result['cpu_s']:.2f} s, summed op time "
             f"{total:.2f} s per step", "",
             "| op type | s/step | share |", "|---|---|---|"]
    for name, seconds in sorted(result["by_type"].items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"| {name} | {seconds:.2f} | {seconds / total:.1%} |")
    lines += ["", "| layer (forward + gradient) | s/step | share |", "|---|---|---|"]
    for name, seconds in sorted(result["by_layer"].items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"| {name} | {seconds:.2f} | {seconds / total:.1%} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=float, default=1.0, help="unet3d width (1: the paper's 95M network)")
    parser.add_argument("--shape", type=int, nargs=4, default=SHAPE, metavar=("B", "D", "H", "W"))
    parser.add_argument("--steps", type=int, default=2, help="profiled steps after one warm-up")
    parser.add_argument("--precision", default="float32", choices=("float32", "mixed_bfloat16"))
    parser.add_argument("--inter-op", type=int, default=0, help="inter-op threads (0: TensorFlow's default)")
    parser.add_argument("--top", type=int, default=12, help="rows per table")
    parser.add_argument("--json", help="also write the sums to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as logdir:
        result = profile(args.width, tuple(args.shape), args.steps, args.precision, logdir,
                         args.inter_op)
    if args.json:
        with open(args.json, "w") as file:
            json.dump(result, file, indent=1)
    print(markdown(result, args.top))


if __name__ == "__main__":
    main()
