import configparser
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# A TensorFlow command added to the real group in a subprocess: TensorFlow's start-up lines
# (oneDNN, CUDA probing), a tiny model fit, then a read that makes its C++ code warn on every
# machine (W... cache_dataset_ops.cc: cache not fully read).
TINY_TF_COMMAND = """
import sys

from tfcovseg.cli import _TensorflowCommand, main


@main.command(cls=_TensorflowCommand)
def tiny():
    import tensorflow as tf

    model = tf.keras.Sequential([tf.keras.Input((4, 8, 8, 1)), tf.keras.layers.Conv3D(1, 3)])
    model.compile("adam", "mse")
    volumes = tf.random.stateless_uniform((2, 4, 8, 8, 1), seed=(0, 0))
    model.fit(volumes, volumes[:, 1:-1, 1:-1, 1:-1], epochs=1, verbose=0)
    list(tf.data.Dataset.range(4).cache().take(1))


main(sys.argv[1:])
"""
# absl's prefix of an INFO, WARNING or ERROR line, and its notice before logging is set up
TF_LOG_LINE = re.compile(r"^([IWE]\d{4} |WARNING: All log messages before absl)")


def _run(code, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "SM_FRAMEWORK")}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, env=env)


def test_import_selects_keras2_before_tensorflow_loads():
    result = _run("import tfcovseg, os, tensorflow as tf; print(os.environ['SM_FRAMEWORK'], tf.keras.__name__)")
    assert result.returncode == 0, result.stderr
    framework, keras_module = result.stdout.split()[-2:]
    assert framework == "tf.keras" and keras_module.startswith("tf_keras")


def test_warns_when_tensorflow_came_first_with_keras3():
    result = _run("import tensorflow, tfcovseg")
    assert "Keras 3" in result.stderr


@pytest.mark.parametrize("args, user_level, shown", [
    pytest.param([], None, False, id="quiet-by-default"),
    pytest.param(["--verbose"], None, True, id="verbose"),
    pytest.param([], "0", True, id="user-level-0"),
    pytest.param(["--verbose"], "3", False, id="user-level-3-beats-verbose"),
])
def test_tensorflow_log_lines_show_only_when_asked(args, user_level, shown):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    if user_level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = user_level
    result = subprocess.run([sys.executable, "-c", TINY_TF_COMMAND, *args, "tiny"],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    log_lines = [line for line in result.stderr.splitlines() if TF_LOG_LINE.match(line)]
    assert bool(log_lines) == shown, result.stderr


def test_setup_cfg_lists_every_package_and_the_configs():
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    listed = setup["options"]["packages"].split()
    found = [".".join(init.parent.relative_to(ROOT).parts)
             for init in (ROOT / "tfcovseg").rglob("__init__.py")]
    assert sorted(listed) == sorted([*found, "tfcovseg.configs"])
