"""Atomic file writes: a temporary file (or folder) next to the target, then a rename.

A killed process leaves either the old file or the new one, never a half-written one.
The temporary file and folder are created as a plain ``open``/``mkdir`` would create them
(mode 0o666 / 0o777, less the umask, applied by the kernel at creation), so the result has the
mode a normal write gives, 0644 / 0755 under umask 022, where ``tempfile`` would leave 0600 / 0700.
Paths go through ``tf.io.gfile`` only where TensorFlow is already needed; these helpers are
for local files (results, manifests, checkpoints, SavedModel folders).
"""

import contextlib
import json
import os
import secrets
import shutil
from pathlib import Path

from tfcovseg.errors import TfcovsegError

FILE_MODE = 0o666  # what open(path, "w") asks for; the umask is taken off
FOLDER_MODE = 0o777  # what mkdir asks for; the umask is taken off
WEIGHTS_SUFFIX = ".weights.h5"


@contextlib.contextmanager
def atomic_path(path, suffix: str = ""):
    """Yield a temporary (empty) file in the target's folder; rename it onto ``path`` on success.

    ``suffix`` keeps an extension that a writer relies on (``.nii.gz``, ``.h5``).
    """
    tmp = _temporary_sibling(path, suffix)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    with _renamed_on_success(tmp, path, Path.unlink):
        yield tmp


@contextlib.contextmanager
def atomic_dir(path):
    """Yield a temporary (empty) folder next to ``path``; rename it onto ``path`` on success.

    ``path`` must not exist, or be an empty folder (what ``os.replace`` can replace).
    """
    tmp = _temporary_sibling(path, "")
    tmp.mkdir(FOLDER_MODE)
    with _renamed_on_success(tmp, path, shutil.rmtree):
        yield tmp



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


def _temporary_sibling(path, suffix: str) -> Path:
    """A new name in ``path``'s folder (created if missing), hidden and marked ``.tmp``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp{suffix}")


@contextlib.contextmanager
def _renamed_on_success(tmp: Path, path, remove):
    try:
        yield
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            remove(tmp)
