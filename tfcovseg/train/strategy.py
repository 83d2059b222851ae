"""The ``tf.distribute`` strategy a run trains under.

- ``default``: one device (TensorFlow's default strategy).
- ``mirrored``: all local GPUs (or the CPU), synchronous data parallelism.
- ``multiworker``: ``MultiWorkerMirroredStrategy`` across machines described by ``TF_CONFIG``
  (``{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}``);
  run the same command on every worker.
- ``auto``: ``multiworker`` when ``TF_CONFIG`` names a cluster, ``mirrored`` with several GPUs,
  else ``default``.
"""

import json
import os
from typing import Literal

import tensorflow as tf

from tfcovseg.errors import TfcovsegError

StrategyName = Literal["auto", "default", "mirrored", "multiworker"]


def cluster_spec() -> dict | None:
    """The ``TF_CONFIG`` environment variable, parsed; ``None`` when unset."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        spec = json.loads(raw)
    except json.JSONDecodeError as err:
        raise TfcovsegError(f"TF_CONFIG is not valid JSON ({err})") from None
    if not isinstance(spec, dict) or "cluster" not in spec or "task" not in spec:
        raise TfcovsegError('TF_CONFIG needs "cluster" and "task" entries (see tf.distribute)')
    return spec


def resolve_strategy_name(name: str = "auto") -> str:
    if name != "auto":
        return name
    if cluster_spec() is not None:
        return "multiworker"
    return "mirrored" if len(tf.config.list_physical_devices("GPU")) > 1 else "default"


def make_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """Create the strategy; call it before any other TensorFlow work (multiworker needs that)."""
    name = resolve_strategy_name(name)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if cluster_spec() is None:
            raise TfcovsegError("strategy multiworker needs TF_CONFIG describing the workers")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise TfcovsegError(f"unknown strategy {name!r}; allowed: auto, default, mirrored, multiworker")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files (worker 0, or the only process)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    return resolver.task_type in ("chief", None) or (
        resolver.task_type == "worker" and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict()
    )
