import subprocess
import sys


def _run(code, env_extra=None):
    import os

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
