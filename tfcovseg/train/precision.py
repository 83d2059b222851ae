"""Mixed precision chosen for the hardware (DESIGN.md, "Precision").

``auto``: ``mixed_bfloat16`` on CPUs with AMX (``amx_bf16``; DESIGN.md: a 3D U-Net step went
from 6.6 s to 1.6 s on such a CPU), ``mixed_float16`` on GPUs, ``float32`` otherwise. AVX-512
BF16 alone is not enough: on this project's CPU without AMX a Conv3D training step took
1.15 s in bf16 against 0.58 s in float32 (2 x 16x48x48x64, two 3x3x3 convs). Whole networks
on the same CPU measured the other way round (README, Benchmarks: the 95M U-Net step and the
2D Unet-resnet18 step 1.7-2.8x faster in bf16); the rule is DESIGN.md's and stays until
revisited. Models keep their last layer in float32, so losses see float32 logits.
"""

from pathlib import Path

import tensorflow as tf

BF16_CPU_FLAGS = ("amx_bf16",)
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: Path | None = None) -> set:
    """The CPU feature flags listed in ``cpuinfo`` (default ``CPUINFO``; empty where there is none)."""
    try:
        text = (CPUINFO if cpuinfo is None else cpuinfo).read_text()
    except OSError:
        return set()
    flags = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags.update(value.split())
    return flags


def resolve_precision(name: str = "auto", gpus: int | None = None, flags: set | None = None) -> str:
    """The Keras mixed-precision policy name that ``name`` means on this machine."""
    if name != "auto":
        return name
    if gpus is None:
        gpus = len(tf.config.list_physical_devices("GPU"))
    if gpus:
        return "mixed_float16"
    flags = cpu_flags() if flags is None else flags
    return "mixed_bfloat16" if any(f in flags for f in BF16_CPU_FLAGS) else "float32"


def set_precision(name: str = "auto") -> str:
    """Set the global Keras policy (before building models); returns the policy used."""
    policy = resolve_precision(name)
    tf.keras.mixed_precision.set_global_policy(policy)
    return policy
