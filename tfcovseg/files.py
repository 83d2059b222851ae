"""Atomic file writes: a temporary file next to the target, then a rename.

A killed process leaves either the old file or the new one, never a half-written one.
Paths go through ``tf.io.gfile`` only where TensorFlow is already needed; these helpers are
for local files (results, manifests, checkpoints).
"""

import contextlib
import json
import os
import tempfile
from pathlib import Path

from tfcovseg.errors import TfcovsegError


@contextlib.contextmanager
def atomic_path(path, suffix: str = ""):
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success.

    ``suffix`` keeps an extension that a writer relies on (``.nii.gz``, ``.h5``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


WEIGHTS_SUFFIX = ".weights.h5"


def save_weights(model, path) -> None:
    """``model.save_weights(path)`` atomically, through a temporary file with the same ending so
    that Keras picks the same format (``.weights.h5`` and ``.h5``: HDF5)."""
    path = str(path)
    suffix = WEIGHTS_SUFFIX if path.endswith(WEIGHTS_SUFFIX) else Path(path).suffix
    with atomic_path(path, suffix=suffix) as tmp:
        model.save_weights(str(tmp))


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json_of_kind(path, kind: str, what: str, hint: str = "") -> dict:
    """A JSON file that tfcovseg wrote with ``"kind": kind``; errors say it is no ``what``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise TfcovsegError(f"corrupt {what} ({err}){hint}", path) from None
    found = data.get("kind") if isinstance(data, dict) else None
    if found != kind:
        raise TfcovsegError(f"not a {what} (kind is {found!r})", path)
    return data
