"""Atomic writes: the mode a plain write would get under the umask, nothing half-written left."""

import contextlib
import os
import stat

import pytest

from tfcovseg.files import atomic_dir, atomic_path, save_weights, write_json, write_text

UMASKS = [
    pytest.param(0o022, 0o644, 0o755, id="umask-022"),
    pytest.param(0o077, 0o600, 0o700, id="umask-077"),
]


@contextlib.contextmanager
def umask(mask: int):
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def write_bytes_through_atomic_path(path):
    with atomic_path(path, suffix=".bin") as tmp, open(tmp, "wb") as f:
        f.write(b"\x00\x01")


@pytest.mark.parametrize("mask, file_mode, folder_mode", UMASKS)
@pytest.mark.parametrize("write", [
    pytest.param(lambda path: write_text(path, "text\n"), id="write_text"),
    pytest.param(lambda path: write_json(path, {"kind": "x"}), id="write_json"),
    pytest.param(write_bytes_through_atomic_path, id="atomic_path"),
])
def test_atomically_written_file_gets_the_umask_mode(write, mask, file_mode, folder_mode, tmp_path):
    path = tmp_path / "out" / "result"
    with umask(mask):
        write(path)
    assert mode(path) == file_mode
    assert mode(path.parent) == folder_mode  # the missing parent, made on the way


@pytest.mark.parametrize("mask, file_mode, folder_mode", UMASKS)
def test_atomically_written_folder_gets_the_umask_mode(mask, file_mode, folder_mode, tmp_path):
    target = tmp_path / "1"
    with umask(mask), atomic_dir(target) as staging:
        (staging / "inside.txt").write_text("x")
    assert mode(target) == folder_mode
    assert mode(target / "inside.txt") == file_mode
    assert [p.name for p in tmp_path.iterdir()] == ["1"]


@pytest.mark.parametrize("mask, file_mode, folder_mode", UMASKS)
def test_saved_weights_get_the_umask_mode(mask, file_mode, folder_mode, tmp_path):
    import tensorflow as tf  # after tfcovseg, which selects tf_keras

    model = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(1)])
    path = tmp_path / "best.weights.h5"
    with umask(mask):
        save_weights(model, path)
    assert mode(path) == file_mode


def test_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "summary.json"
    write_json(path, {"kind": "old"})
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text('{"kind": "ha')
        raise RuntimeError("killed")
    assert path.read_text() == '{\n  "kind": "old"\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_failed_folder_write_leaves_no_folder(tmp_path):
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "1") as staging:
        (staging / "saved_model.pb").write_bytes(b"half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
