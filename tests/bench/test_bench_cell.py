import numpy as np
import pytest

from tfcovseg.bench.cell import LossCurves, cell_precision, set_precision
from tfcovseg.bench.grid import Cell
from tfcovseg.bench.models2d import build_cell_model
from tfcovseg.settings.bench import Architectures, Training
from tfcovseg.train import precision as precision_module


def keras():
    import tensorflow as tf  # after tfcovseg, which selects tf_keras

    return tf


def test_recorder_restores_the_weights_of_the_lowest_validation_loss():
    tf = keras()
    model = tf.keras.Sequential([tf.keras.Input((1,)), tf.keras.layers.Dense(1)])
    seen = []
    recorder = LossCurves(on_epoch=lambda *args: seen.append(args))
    recorder.set_model(model)
    for epoch, validation_loss in enumerate([0.5, 0.2, 0.4]):
        model.set_weights([np.full((1, 1), epoch, np.float32), np.zeros(1, np.float32)])
        recorder.on_epoch_begin(epoch)
        recorder.on_test_begin()
        recorder.on_test_end()
        recorder.on_epoch_end(epoch, {"loss": 1.0 - epoch / 10, "val_loss": validation_loss})
    recorder.on_train_end()
    assert model.get_weights()[0][0, 0] == 1.0
    assert (recorder.best_epoch, recorder.best_loss) == (2, 0.2)
    assert recorder.validation_loss == [0.5, 0.2, 0.4]
    assert [s[0] for s in seen] == [1, 2, 3]
    assert len(recorder.train_seconds) == len(recorder.validation_seconds) == 3


def test_mixed_bfloat16_cells_still_output_float32():
    tf = keras()
    set_precision("mixed_bfloat16")
    try:
        model = build_cell_model(Cell("lungs", "linknet", "resnet18", "random"), Architectures(), 32)
        assert model(np.zeros((1, 32, 32, 1), np.float32)).dtype == tf.float32
    finally:
        set_precision("float32")



AMX_CPU = "processor: 0\nflags\t\t: fpu sse avx512f avx512_bf16 amx_bf16 amx_tile\n"
AVX512_BF16_CPU = "processor: 0\nflags\t\t: fpu sse avx512f avx512_bf16\n"


@pytest.mark.parametrize(("cpuinfo", "gpus", "asked", "expected"), [
    pytest.param(AMX_CPU, 0, "auto", "mixed_bfloat16", id="amx-cpu"),
    pytest.param(AVX512_BF16_CPU, 0, "auto", "float32", id="avx512-bf16-without-amx"),
    pytest.param(AVX512_BF16_CPU, 1, "auto", "mixed_float16", id="gpu"),
    pytest.param(AMX_CPU, 0, "float32", "float32", id="explicit-float32"),
])
def test_auto_cell_precision_follows_the_cpu_flags_and_gpus(tmp_path, monkeypatch, cpuinfo,
                                                            gpus, asked, expected):
    tf = keras()
    (tmp_path / "cpuinfo").write_text(cpuinfo)
    monkeypatch.setattr(precision_module, "CPUINFO", tmp_path / "cpuinfo")
    devices = tf.config.list_physical_devices
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: ["fake GPU"] * gpus if kind == "GPU" else devices(kind))
    assert Training().precision == "auto"
    try:
        assert cell_precision(Training(precision=asked)) == expected
        assert tf.keras.mixed_precision.global_policy().name == expected
    finally:
        set_precision("float32")
