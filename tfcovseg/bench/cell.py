"""Train, validate and test one grid cell; keep its weights and write its result file.

Training follows the authors' loop: soft Dice loss over each batch, Adam, a fixed number of
epochs, and the weights of the epoch with the lowest validation loss are restored at the end
(the paper keeps that epoch's model). Timings are wall-clock seconds per image: a training
step (forward + backward + update) and a validation forward pass, averaged over epochs; the
authors profiled the forward pass only, so their training times are lower.
"""

import dataclasses
import datetime
import platform
import time

import numpy as np
import tensorflow as tf

import tfcovseg
from tfcovseg.bench import data as bench_data
from tfcovseg.bench import store
from tfcovseg.bench.grid import Cell
from tfcovseg.bench.metrics2d import image_scores, mean_scores, soft_dice_loss
from tfcovseg.bench.models2d import (
    ImagenetUnavailable,
    build_cell_model,
    first_conv_kernel,
    trainable_parameters,
)
from tfcovseg.config import to_dict
from tfcovseg.files import save_weights
from tfcovseg.settings.bench import BenchConfig, Evaluation, Training
from tfcovseg.train.precision import set_precision


class LossCurves(tf.keras.callbacks.Callback):
    """Per-epoch losses and timings; keeps the weights of the lowest validation loss."""

    def __init__(self, on_epoch=None):
        super().__init__()
        self.on_epoch = on_epoch
        self.train_loss, self.validation_loss = [], []
        self.train_seconds, self.validation_seconds = [], []
        self.best_loss, self.best_epoch, self.best_weights = np.inf, 0, None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_test_begin(self, logs=None):
        self._validation_start = time.perf_counter()
        self.train_seconds.append(self._validation_start - self._start)

    def on_test_end(self, logs=None):
        self.validation_seconds.append(time.perf_counter() - self._validation_start)

    def on_epoch_end(self, epoch, logs=None):
        train_loss, validation_loss = float(logs["loss"]), float(logs["val_loss"])
        self.train_loss.append(train_loss)
        self.validation_loss.append(validation_loss)
        if validation_loss < self.best_loss:
            self.best_loss, self.best_epoch = validation_loss, epoch + 1
            self.best_weights = self.model.get_weights()
        if self.on_epoch is not None:
            seconds = self.train_seconds[-1] + self.validation_seconds[-1]
            self.on_epoch(epoch + 1, train_loss, validation_loss, seconds)

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


def train(model, train_batches, validation_batches, training: Training, on_epoch=None,
          train_slices=None):
    """Fit with the paper's optimiser and loss; returns the recorder (best weights restored).

    ``train_slices`` (the slices of one pass over ``train_batches``): the training batches are
    read through one repeated iterator, ``ceil(slices / batch size)`` steps an epoch, as the 3D
    fit reads its data; without it Keras makes a new iterator every epoch, and setting up the
    augmenting pipeline's iterator is serial work between the epochs.
    """
    fit_data = {"x": train_batches}
    if train_slices is not None:
        fit_data = {"x": train_batches.repeat(),
                    "steps_per_epoch": -(-int(train_slices) // training.batch_size)}
    optimizer = tf.keras.optimizers.Adam(learning_rate=training.learning_rate,
                                         beta_1=training.beta_1, beta_2=training.beta_2,
                                         epsilon=training.epsilon)
    model.compile(optimizer=optimizer,
                  loss=lambda y, p: soft_dice_loss(y, p, form=training.loss))
    recorder = LossCurves(on_epoch)
    model.fit(**fit_data, validation_data=validation_batches, epochs=training.epochs,
              verbose=0, callbacks=[recorder])
    return recorder


def score_test_set(model, splits, pipeline, experiment: str, evaluation: Evaluation,
                   batch_size: int, keep_volume: bool) -> tuple[dict, dict, dict]:
    """Mean test metrics; image counts; arrays for the figures.

    ``missed_images`` counts test images with a non-empty target where nothing was predicted:
    the paper's rule scores them 1, so a model that predicts nothing can look perfect.
    """
    scores, arrays, missed = [], {}, 0
    histograms = np.zeros((2, store.HISTOGRAM_BINS), np.int64)
    figure_case = min(evaluation.figure_case, len(splits.test_cases) - 1)
    # one graph for every batch: an eager call of the functional model costs ~10 % more per batch
    forward = tf.function(lambda image: model(image, training=False), reduce_retracing=True)
    for index, case in enumerate(splits.test_cases):
        images, masks, probabilities = [], [], []
        for image, mask in bench_data.batches(splits.test, [case], pipeline, experiment,
                                              batch_size, training=False, seed=0):
            probability = forward(image).numpy()
            image, mask = image.numpy(), mask.numpy()
            scores += [image_scores(p, m, evaluation.threshold, evaluation.eps,
                                    evaluation.convention) for p, m in zip(probability, mask)]
            histograms += _histograms(image, mask)
            missed += int(np.sum(np.any(mask > 0.5, axis=(1, 2, 3))
                                 & ~np.any(probability > evaluation.threshold, axis=(1, 2, 3))))
            if index == figure_case:
                images.append(image[..., 0])
                masks.append(mask[..., 0] > 0.5)
                probabilities.append(probability[..., 0])
        if index == figure_case and images:
            arrays.update(_figure_arrays(images, masks, probabilities, evaluation, keep_volume))
    arrays["histogram_images"], arrays["histogram_masks"] = histograms
    return mean_scores(scores), {"test_images": len(scores), "missed_images": missed}, arrays


def _histograms(image, mask):
    image_counts = np.histogram(image, store.HISTOGRAM_BINS, store.HISTOGRAM_RANGE)[0]
    mask_counts = np.histogram(image[mask > 0.5], store.HISTOGRAM_BINS,
                               store.HISTOGRAM_RANGE)[0]
    return np.stack([image_counts, mask_counts])


def _figure_arrays(images, masks, probabilities, evaluation: Evaluation, keep_volume: bool):
    images, masks = np.concatenate(images), np.concatenate(masks)
    predictions = np.concatenate(probabilities) > evaluation.threshold
    index = min(evaluation.figure_slice, len(images) - 1)
    arrays = {"figure_image": images[index], "figure_mask": masks[index],
              "figure_prediction": predictions[index]}
    if keep_volume:
        arrays["volume_mask"], arrays["volume_prediction"] = masks, predictions
    return arrays


def run_cell(cell: Cell, config: BenchConfig, bench_dir, splits=None, on_epoch=None) -> dict:
    """Train and test ``cell``; write weights, arrays and (last) the result file; return the result."""
    splits = splits or bench_data.load_splits(config.data, config.grid.experiments)
    pipeline = config.pipeline
    training, evaluation = config.training, config.evaluation
    batch = dict(experiment=cell.experiment, batch_size=training.batch_size, seed=training.seed)
    train_batches = bench_data.batches(splits.train, splits.train_cases, pipeline, training=True,
                                       **batch)
    validation_batches = bench_data.batches(splits.train, splits.validation_cases, pipeline,
                                            training=False, **batch)
    size = int(train_batches.element_spec[0].shape[1])
    result = {"id": cell.id, "cell": dataclasses.asdict(cell), "image_size": size,
              "config": to_dict(config), "host": platform.node(),
              "tfcovseg_version": tfcovseg.__version__}

    tf.keras.backend.clear_session()  # free the previous cell's graphs in long runs
    result["precision"] = cell_precision(training)
    tf.keras.utils.set_random_seed(training.seed)
    try:
        model = build_cell_model(cell, config.architectures, size)
    except ImagenetUnavailable as err:
        result.update(status=store.NO_IMAGENET, reason=err.problem, finished=_now())
        store.write_result(bench_dir, result)
        return result
    filters_before = first_conv_kernel(model)
    n_train = bench_data.slice_count(splits.train, splits.train_cases)
    n_validation = bench_data.slice_count(splits.train, splits.validation_cases)
    recorder = train(model, train_batches, validation_batches, training, on_epoch, n_train)
    keep_volume = cell.encoder == evaluation.volume_encoder and cell.init == "random"
    metrics, counts, arrays = score_test_set(model, splits, pipeline, cell.experiment,
                                             evaluation, training.batch_size, keep_volume)
    arrays.update(filters_before=filters_before, filters_after=first_conv_kernel(model))

    save_layer_weights(model, store.weights_path(bench_dir, cell.id))
    store.write_arrays(bench_dir, cell.id, arrays)
    result.update(
        status=store.DONE,
        metrics=metrics,
        **counts,
        parameters=trainable_parameters(model),
        train_images=n_train,
        validation_images=n_validation,
        train_seconds_per_image=float(np.mean(recorder.train_seconds)) / n_train,
        validation_seconds_per_image=float(np.mean(recorder.validation_seconds)) / n_validation,
        train_loss=recorder.train_loss,
        validation_loss=recorder.validation_loss,
        best_epoch=recorder.best_epoch,
        best_validation_loss=float(recorder.best_loss),
        finished=_now(),
    )
    store.write_result(bench_dir, result)
    return result


def cell_precision(training: Training) -> str:
    """Set the Keras policy of ``training.precision`` ("auto" resolved for this machine, as
    training resolves it: tfcovseg.train.precision) before the model is built; returns it."""
    return set_precision(training.precision)


def save_layer_weights(model, path) -> None:
    """The layer weights only, atomically (a compiled model would also save Adam's moments)."""
    save_weights(tf.keras.Model(model.inputs, model.outputs, name=model.name), path)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
