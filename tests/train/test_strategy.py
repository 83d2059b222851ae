import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from tfcovseg.errors import TfcovsegError
from tfcovseg.train.precision import cpu_flags, resolve_precision
from tfcovseg.train.strategy import make_strategy, resolve_strategy_name

WORKER = textwrap.dedent("""
    import json
    import numpy as np
    import tfcovseg
    import tensorflow as tf
    from tfcovseg.train import DiceCrossEntropy, FastaiAdam, OneCycle
    from tfcovseg.train.strategy import is_chief, make_strategy

    strategy = make_strategy("auto")
    with strategy.scope():
        inputs = tf.keras.Input((4, 8, 8, 1))
        x = tf.keras.layers.Conv3D(4, 3, padding="same")(inputs)
        x = tf.keras.layers.BatchNormalization()(x)
        logits = tf.keras.layers.Conv3D(2, 1)(x)
        model = tf.keras.Model(inputs, logits)
        model.compile(optimizer=FastaiAdam(), loss=DiceCrossEntropy())
    rng = np.random.default_rng(0)
    labels = (rng.random((8, 4, 8, 8, 1)) > 0.8).astype("int32")
    images = (labels + rng.normal(0, 0.3, labels.shape)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4).repeat()
    model.fit(data, epochs=2, steps_per_epoch=2, verbose=0,
              callbacks=[OneCycle(1e-2, total_steps=4, weight_decay=1e-5)])
    checksum = float(sum(np.abs(w).sum() for w in model.get_weights()))
    print(json.dumps({"chief": is_chief(strategy), "replicas": strategy.num_replicas_in_sync,
                      "checksum": checksum}))
""")


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_train_in_sync_over_loopback_with_tf_config(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = []
    for index in range(2):
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="-1", TF_CONFIG=json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen([sys.executable, str(script)], env=env, text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    results = []
    for process in processes:
        try:
            out, err = process.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            for p in processes:
                p.kill()
            pytest.fail("multi-worker training did not finish in time")
        assert process.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert [r["replicas"] for r in results] == [2, 2]
    assert sorted(r["chief"] for r in results) == [False, True]
    assert results[0]["checksum"] == pytest.approx(results[1]["checksum"], rel=1e-6)


def test_multiworker_without_tf_config_is_refused(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(TfcovsegError, match="needs TF_CONFIG"):
        make_strategy("multiworker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(TfcovsegError, match="TF_CONFIG is not valid JSON"):
        resolve_strategy_name("auto")


def test_auto_precision_follows_cpu_flags_and_gpus(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor: 0\nflags\t\t: fpu sse avx512f avx512_bf16 amx_bf16 amx_tile\n")
    assert "amx_bf16" in cpu_flags(cpuinfo)
    assert resolve_precision("auto", gpus=0, flags=cpu_flags(cpuinfo)) == "mixed_bfloat16"
    # AVX-512 BF16 without AMX made bf16 convolutions slower than float32 here
    assert resolve_precision("auto", gpus=0, flags={"avx512f", "avx512_bf16"}) == "float32"
    assert resolve_precision("auto", gpus=0, flags={"avx2"}) == "float32"
    assert resolve_precision("auto", gpus=1, flags=set()) == "mixed_float16"
    assert resolve_precision("float32", gpus=1) == "float32"


def test_cpu_flags_default_to_the_module_cpuinfo_path(tmp_path, monkeypatch):
    from tfcovseg.train import precision

    (tmp_path / "cpuinfo").write_text("flags\t: avx2 amx_bf16\n")
    monkeypatch.setattr(precision, "CPUINFO", tmp_path / "cpuinfo")
    assert cpu_flags() == {"avx2", "amx_bf16"}
    assert resolve_precision("auto", gpus=0) == "mixed_bfloat16"
    monkeypatch.setattr(precision, "CPUINFO", tmp_path / "missing")
    assert cpu_flags() == set()
