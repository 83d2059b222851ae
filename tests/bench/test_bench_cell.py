import numpy as np

from tfcovseg.bench.cell import LossCurves, set_precision
from tfcovseg.bench.grid import Cell
from tfcovseg.bench.models2d import build_cell_model
from tfcovseg.settings.bench import Architectures


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

