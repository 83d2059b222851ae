import math

import numpy as np
import pytest
import tensorflow as tf

from tfcovseg.train.callbacks import BestDiceCheckpoint, FreezeEncoder, OneCycle
from tfcovseg.train.losses import DiceCrossEntropy
from tfcovseg.train.optimizer import FastaiAdam


def fastai_sched_cos(start, end, pos):
    # fastai.callback.schedule.SchedCos
    return start + (1 + math.cos(math.pi * (1 - pos))) * (end - start) / 2


def fastai_one_cycle(step, total, lr_max, div=25.0, div_final=1e5, pct_start=0.25,
                     moms=(0.95, 0.85, 0.95)):
    # fit_one_cycle: combined_cos(pct_start, lr_max/div, lr_max, lr_max/div_final) for the lr,
    # combined_cos(pct_start, *moms) for beta_1; combine_scheds picks the phase by pos.
    pos = step / total
    pcts = [0.0, pct_start, 1.0]
    idx = min(max(i for i, p in enumerate(pcts) if pos >= p), 1)
    phase_pos = (pos - pcts[idx]) / (pcts[idx + 1] - pcts[idx])
    lrs = [(lr_max / div, lr_max), (lr_max, lr_max / div_final)]
    betas = [(moms[0], moms[1]), (moms[1], moms[2])]
    return fastai_sched_cos(*lrs[idx], phase_pos), fastai_sched_cos(*betas[idx], phase_pos)


def tiny_segmenter(name="tiny"):
    """A 2-class 3D segmenter with an 'encoder' conv + BN and a float32 head."""
    inputs = tf.keras.Input((4, 8, 8, 1))
    x = tf.keras.layers.Conv3D(4, 3, padding="same", name="encoder_conv")(inputs)
    x = tf.keras.layers.BatchNormalization(name="encoder_bn")(x)
    x = tf.keras.layers.ReLU()(x)
    x = tf.keras.layers.Conv3D(2, 1, name="head", dtype="float32")(x)
    return tf.keras.Model(inputs, x, name=name)


def blob_data(n=4, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.zeros((n, 4, 8, 8, 1), np.int32)
    labels[:, 1:3, 2:6, 2:6] = 1
    images = labels + rng.normal(0, 0.3, labels.shape).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices((images.astype(np.float32), labels)).batch(batch)


class Recorder(tf.keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.lrs, self.betas = [], []

    def on_train_batch_begin(self, batch, logs=None):
        self.lrs.append(float(self.model.optimizer.learning_rate.numpy()))
        self.betas.append(float(self.model.optimizer.beta_1.numpy()))


def test_one_cycle_values_follow_fastai_formulas():
    cycle = OneCycle(lr_max=1e-2, total_steps=40)
    for step in range(40):
        lr, beta = fastai_one_cycle(step, 40, 1e-2)
        assert cycle.learning_rate(step) == pytest.approx(lr, rel=1e-12)
        assert cycle.beta_1(step) == pytest.approx(beta, rel=1e-12)
    assert cycle.learning_rate(0) == pytest.approx(1e-2 / 25)
    assert cycle.learning_rate(10) == pytest.approx(1e-2)
    assert cycle.beta_1(10) == pytest.approx(0.85)
    assert cycle.learning_rate(40) == pytest.approx(1e-2 / 1e5)


def test_one_cycle_drives_optimizer_per_batch_and_resumes_mid_schedule():
    data = blob_data(n=6, batch=2)  # 3 steps per epoch
    model = tiny_segmenter()
    model.compile(optimizer=FastaiAdam(), loss=DiceCrossEntropy())
    recorder = Recorder()
    cycle = OneCycle(lr_max=1e-2, total_steps=12, weight_decay=1e-5)
    history = model.fit(data, epochs=2, callbacks=[cycle, recorder], verbose=0)
    model.fit(data, epochs=4, initial_epoch=2, callbacks=[cycle, recorder], verbose=0)
    expected = [fastai_one_cycle(s, 12, 1e-2) for s in range(12)]
    np.testing.assert_allclose(recorder.lrs, [lr for lr, _ in expected], rtol=1e-6)
    np.testing.assert_allclose(recorder.betas, [b for _, b in expected], rtol=1e-6)
    assert model.optimizer.weight_decay == 1e-5
    assert "lr" in history.history


def test_freeze_encoder_freezes_convs_keeps_bn_training_then_unfreezes():
    model = tiny_segmenter()
    model.compile(optimizer=FastaiAdam(1e-2), loss=DiceCrossEntropy())
    encoder = [model.get_layer("encoder_conv"), model.get_layer("encoder_bn")]
    snapshots = {}

    class Snapshot(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots[epoch] = {w.name: w.numpy().copy() for w in model.weights}

    before = {w.name: w.numpy().copy() for w in model.weights}
    model.fit(blob_data(), epochs=2, verbose=0,
              callbacks=[FreezeEncoder(1), Snapshot()])
    kernel, gamma, mean = "encoder_conv/kernel:0", "encoder_bn/gamma:0", "encoder_bn/moving_mean:0"
    np.testing.assert_array_equal(snapshots[0][kernel], before[kernel])
    assert not np.allclose(snapshots[0][gamma], before[gamma])
    assert not np.allclose(snapshots[0][mean], before[mean])
    assert not np.allclose(snapshots[1][kernel], snapshots[0][kernel])
    assert all(layer.trainable for layer in encoder)


def test_best_dice_checkpoint_reports_dice_saves_best_and_restores_it(tmp_path):
    model = tiny_segmenter()
    model.compile(optimizer=FastaiAdam(3e-2), loss=DiceCrossEntropy())
    path = tmp_path / "best.weights.h5"
    best = BestDiceCheckpoint(blob_data(seed=1), path, loss=DiceCrossEntropy(), verbose=False)
    history = model.fit(blob_data(), epochs=3, verbose=0, callbacks=[best])
    dices = history.history["val_dice"]
    assert len(dices) == 3 and "val_loss" in history.history
    assert best.best == pytest.approx(max(dices))
    assert path.is_file() and not list(tmp_path.glob(".*tmp*"))
    assert best.evaluate()["val_dice"] == pytest.approx(max(dices), abs=1e-6)


def test_patch_mode_tuning_dice_is_taken_on_whole_volumes_by_sliding_window(tmp_path):
    model = threshold_model((4, 8, 8))  # windows of 4x8x8
    images = np.zeros((3, 6, 20, 20, 1), np.float32)
    labels = np.zeros((3, 6, 20, 20, 1), np.int32)
    images[0, 1:5, 3:17, 5:15] = labels[0, 1:5, 3:17, 5:15] = 1  # spans several windows: Dice 1
    images[2, 2:4, 2:6, 2:6] = 1  # a lesion the label does not have: Dice 0
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(1)
    best = BestDiceCheckpoint(data, tmp_path / "best.h5", loss=DiceCrossEntropy(), window=(4, 8, 8),
                              metric="per_volume")
    best.set_model(model)
    assert best.evaluate() == {"val_dice": pytest.approx(0.5)}  # case 1 (both empty) left out


def threshold_model(shape):
    """A "model" that calls a voxel lesion when its value exceeds 0.5."""
    inputs = tf.keras.Input((*shape, 1))
    threshold = tf.keras.layers.Conv3D(2, 1, name="threshold")
    model = tf.keras.Model(inputs, threshold(inputs))
    threshold.set_weights([np.array([0.0, 20.0], np.float32).reshape(1, 1, 1, 1, 2),
                           np.array([0.0, -10.0], np.float32)])
    return model


def test_pooled_metric_pools_voxels_of_a_batch_where_per_volume_averages_volumes(tmp_path):
    images = np.zeros((2, 4, 8, 8, 1), np.float32)
    labels = np.zeros((2, 4, 8, 8, 1), np.int32)
    images[0, :, :, :6] = labels[0, :, :, :6] = 1  # 192 lesion voxels, all found: Dice 1
    labels[1, 0, 0, 0] = 1  # one lesion voxel, missed: Dice 0
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(2)
    scores = {}
    for metric in ("pooled", "per_volume"):
        best = BestDiceCheckpoint(data, tmp_path / "best.h5", metric=metric)
        best.set_model(threshold_model((4, 8, 8)))
        scores[metric] = best.evaluate()["val_dice"]
    assert scores["per_volume"] == pytest.approx(0.5)
    assert scores["pooled"] == pytest.approx(2 * 192 / (192 + 193))


def test_pooled_metric_of_a_batch_with_nothing_to_score_is_nan_and_never_the_best(tmp_path):
    images = np.zeros((2, 4, 8, 8, 1), np.float32)
    labels = np.zeros((2, 4, 8, 8, 1), np.int32)
    images[0, 1, 1, 1] = labels[0, 1, 1, 1] = 1
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(1)  # batch 2 has nothing
    path = tmp_path / "best.h5"
    best = BestDiceCheckpoint(data, path, verbose=False)
    best.set_model(threshold_model((4, 8, 8)))
    logs = {}
    best.on_epoch_end(0, logs)
    assert math.isnan(logs["val_dice"]) and best.best is None and not path.exists()
    best.on_train_end()  # no finite epoch at all: the last weights are kept in the file
    assert path.is_file()
