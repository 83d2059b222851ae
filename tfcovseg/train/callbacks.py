"""Keras callbacks for fastai-style training, usable with any ``model.fit``.

- ``OneCycle``: fastai's ``fit_one_cycle`` learning-rate and beta_1 schedule, per batch.
- ``FreezeEncoder``: train the first epochs with the encoder frozen (fastai ``freeze()``).
- ``BestDiceCheckpoint``: hard lesion Dice on tuning volumes after every epoch; keeps the best
  weights in a file and restores them when training ends (fastai ``SaveModelCallback``).

Example::

    model.compile(optimizer=FastaiAdam(), loss=DiceCrossEntropy())
    model.fit(train, epochs=10, callbacks=[
        OneCycle(lr_max=1e-2, total_steps=10 * steps, weight_decay=1e-5),
        FreezeEncoder(epochs=10),
        BestDiceCheckpoint(tuning, "best.weights.h5"),
    ])
"""

import logging
import math
from typing import Literal

import numpy as np
import tensorflow as tf

from tfcovseg.files import save_weights
from tfcovseg.metrics import dice
from tfcovseg.models.sliding_window import lesion_mask, sliding_window_probabilities
from tfcovseg.train.optimizer import base_optimizer

LESION = 1
log = logging.getLogger(__name__)


def cosine_ramp(start: float, end: float, pos: float) -> float:
    """fastai ``SchedCos``: from ``start`` at pos 0 to ``end`` at pos 1 along half a cosine."""
    return start + (1.0 + math.cos(math.pi * (1.0 - pos))) * (end - start) / 2.0


def one_cycle_value(pos: float, start: float, middle: float, end: float, pct_start: float) -> float:
    """fastai ``combined_cos(pct_start, start, middle, end)`` at training progress ``pos``."""
    if pos < pct_start:
        return cosine_ramp(start, middle, pos / pct_start)
    return cosine_ramp(middle, end, (pos - pct_start) / (1.0 - pct_start))


class OneCycle(tf.keras.callbacks.Callback):
    """fastai ``fit_one_cycle``: cosine warm-up of the learning rate from ``lr_max / div`` to
    ``lr_max`` over the first ``pct_start`` of the steps, then cosine annealing to
    ``lr_max / div_final``; Adam's beta_1 goes ``moms[0] -> moms[1] -> moms[2]`` alongside.

    ``total_steps`` counts all batches of the fit (epochs x steps per epoch); the position is
    taken from the epoch and batch index, so a fit resumed with ``initial_epoch`` continues the
    schedule where it stopped. ``weight_decay`` (decoupled) is set on the optimizer.
    """

    def __init__(self, lr_max: float, total_steps: int, div: float = 25.0,
                 div_final: float = 1e5, pct_start: float = 0.25,
                 moms=(0.95, 0.85, 0.95), weight_decay: float | None = None):
        super().__init__()
        if total_steps < 1:
            raise ValueError(f"total_steps must be at least 1, got {total_steps}")
        self.lr_max = lr_max
        self.total_steps = total_steps
        self.div = div
        self.div_final = div_final
        self.pct_start = pct_start
        self.moms = tuple(moms)
        self.weight_decay = weight_decay
        self._epoch = 0
        self._steps_per_epoch = 1

    def learning_rate(self, step: int) -> float:
        pos = min(step, self.total_steps) / self.total_steps
        return one_cycle_value(pos, self.lr_max / self.div, self.lr_max,
                               self.lr_max / self.div_final, self.pct_start)

    def beta_1(self, step: int) -> float:
        pos = min(step, self.total_steps) / self.total_steps
        return one_cycle_value(pos, *self.moms, self.pct_start)

    def on_train_begin(self, logs=None):
        epochs = self.params.get("epochs") or 1
        self._steps_per_epoch = self.params.get("steps") or max(1, self.total_steps // epochs)
        if self.weight_decay is not None:
            base_optimizer(self.model.optimizer).weight_decay = self.weight_decay

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        step = self._epoch * self._steps_per_epoch + batch
        optimizer = base_optimizer(self.model.optimizer)
        optimizer.learning_rate = self.learning_rate(step)
        if isinstance(optimizer.beta_1, tf.Variable):
            optimizer.beta_1.assign(self.beta_1(step))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = float(base_optimizer(self.model.optimizer).learning_rate.numpy())


class FreezeEncoder(tf.keras.callbacks.Callback):
    """Freeze the encoder for the first ``epochs`` epochs of the fit, then unfreeze it.

    As fastai's ``freeze()``, BatchNorm layers inside the frozen encoder keep training (their
    scale/offset and running statistics) when ``keep_bn_trainable``; Keras' ``trainable=False``
    on a BatchNorm layer would switch it to inference mode instead. The encoder is the model's
    layers named ``encoder_*`` (``tfcovseg.models.encoder_layers``). The optimizer is built over
    all trainable variables first, so its state survives the unfreezing.
    """

    def __init__(self, epochs: int, keep_bn_trainable: bool = True):
        super().__init__()
        self.epochs = epochs
        self.keep_bn_trainable = keep_bn_trainable
        self.frozen = False

    def _set_frozen(self, frozen: bool):
        from tfcovseg.models import freeze_encoder, unfreeze_encoder

        if frozen:
            freeze_encoder(self.model, keep_bn_trainable=self.keep_bn_trainable)
        else:
            unfreeze_encoder(self.model)
        self.frozen = frozen
        self.model.make_train_function(force=True)

    def on_train_begin(self, logs=None):
        with self.model.distribute_strategy.scope():
            base_optimizer(self.model.optimizer).build(self.model.trainable_variables)

    def on_epoch_begin(self, epoch, logs=None):
        should_freeze = epoch < self.epochs
        if should_freeze != self.frozen:
            self._set_frozen(should_freeze)

    def on_train_end(self, logs=None):
        if self.frozen:
            self._set_frozen(False)


def mask_dice(labels, predicted) -> np.ndarray:
    """Dice of the lesion class per volume of predicted class maps ``[B, D, H, W]`` (NaN when
    both the label and the prediction are empty)."""
    labels = np.reshape(labels, predicted.shape)
    return np.array([dice(g == LESION, p == LESION) for g, p in zip(labels, predicted)])


def pooled_dice(labels, predicted) -> float:
    """The authors' ``dice_score``: lesion Dice over all voxels of a batch, no eps (NaN if the
    batch has neither a lesion nor a predicted one)."""
    labels = np.reshape(labels, predicted.shape) == LESION
    predicted = predicted == LESION
    total = int(labels.sum()) + int(predicted.sum())
    return 2.0 * int((labels & predicted).sum()) / total if total else math.nan


class BestDiceCheckpoint(tf.keras.callbacks.Callback):
    """After each epoch, the hard lesion Dice on ``val_data`` (``val_dice``) and, with a
    ``loss``, its mean (``val_loss``) go into the logs; the best weights are saved to ``path``
    (HDF5, atomically) and restored when training ends.

    ``val_data`` yields ``(image, label)`` batches at training resolution. ``metric``:
    ``"pooled"`` (the authors' ``dice_score`` under fastai): Dice over all voxels of each batch,
    batches averaged by size; a batch with nothing to score makes the epoch NaN, which is never
    the best. ``"per_volume"``: the mean per-volume Dice, volumes where both the label and the
    prediction are empty left out (Ma et al.'s convention, ``tfcovseg.metrics.dice``);
    independent of the batch size, as evaluation scores. ``best`` carries a previous best over
    (resuming); when no epoch had a finite Dice and ``path`` does not exist, the last weights
    are saved there so that a later stage finds a file.

    With ``window`` (a patch-trained model's input size), ``val_data`` holds whole scaled
    volumes instead (batch 1, any size at least ``window``), predicted by a sliding window with
    Gaussian blending (``overlap``) as ``tfcovseg predict`` does; there is no ``val_loss`` then.
    """

    def __init__(self, val_data, path, loss=None, best: float | None = None, verbose: bool = True,
                 window=None, overlap: float = 0.5,
                 metric: Literal["pooled", "per_volume"] = "pooled"):
        super().__init__()
        if metric not in ("pooled", "per_volume"):
            raise ValueError(f"metric must be 'pooled' or 'per_volume', got {metric!r}")
        self.metric = metric
        self.val_data = val_data
        self.path = str(path)
        self.loss = None if window is not None else loss
        self.best = best
        self.verbose = verbose
        self.window = window
        self.overlap = overlap
        self.saved = False
        self._forward = None

    def _make_forward(self):
        if self.window is None:
            return tf.function(lambda x: self.model(x, training=False))

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, None, 1], tf.float32)])
        def whole_volume(images):
            return sliding_window_probabilities(self.model, images[..., 0], self.window,
                                                self.overlap)

        return whole_volume

    def evaluate(self) -> dict:
        """``{"val_dice": ..., "val_loss": ...}`` of the current weights on ``val_data``."""
        if self._forward is None:
            self._forward = self._make_forward()
        scores, pooled, losses, counts = [], [], [], []
        for images, labels in self.val_data:
            outputs = self._forward(images)
            if self.window is not None:
                predicted = lesion_mask(outputs.numpy()).astype(np.int64)
            else:
                predicted = np.argmax(outputs.numpy(), axis=-1)
            scores.extend(mask_dice(labels.numpy(), predicted))
            pooled.append(pooled_dice(labels.numpy(), predicted))
            counts.append(int(images.shape[0]))
            if self.loss is not None:
                losses.append(float(self.loss(labels, outputs)))
        scores = np.array(scores, dtype=float)
        if self.metric == "pooled":
            score = float(np.average(pooled, weights=counts))
        else:
            score = float(np.nanmean(scores)) if np.isfinite(scores).any() else math.nan
        result = {"val_dice": score}
        if losses:
            result["val_loss"] = float(np.average(losses, weights=counts))
        return result

    def on_epoch_end(self, epoch, logs=None):
        result = self.evaluate()
        if logs is not None:
            logs.update(result)
        score = result["val_dice"]
        if math.isnan(score) or (self.best is not None and score <= self.best):
            return
        if self.verbose and self.best is not None:
            print(f"tuning Dice improved from {self.best:.4f} to {score:.4f}: saving {self.path}")
        self.best = score
        self.save()

    def save(self):
        save_weights(self.model, self.path)
        self.saved = True

    def on_train_end(self, logs=None):
        if self.saved or tf.io.gfile.exists(self.path):
            self.model.load_weights(self.path)
            return
        log.warning("no epoch had a finite tuning Dice: keeping the last weights in %s", self.path)
        self.save()
