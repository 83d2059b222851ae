"""tfcovseg's side of ``compare.py``: one function per section, a job dict in, a result dict out.

Each runs in a process of its own (``compare.py --one``) and builds what training, the grid
and ``tfcovseg predict`` build: ``unet3d()``, ``tfcovseg.bench.models2d.build_cell_model`` with
the grid's loss and optimiser, ``tfcovseg.data.pipeline3d.volume_dataset``,
``tfcovseg.infer.predictor.keras_predictor``.
"""

import time

import numpy as np

import tfcovseg  # noqa: F401  (selects Keras 2 before TensorFlow loads)

# isort: split
import tensorflow as tf
from compare import passes_per_chunk, summarise, timed_calls, window_count

from tfcovseg.bench import data as bench_data
from tfcovseg.bench.cell import train
from tfcovseg.bench.grid import Cell
from tfcovseg.bench.metrics2d import soft_dice_loss
from tfcovseg.bench.models2d import build_cell_model
from tfcovseg.data.pipeline3d import volume_dataset
from tfcovseg.infer.predictor import keras_predictor
from tfcovseg.io.manifest import load_dataset
from tfcovseg.models import unet3d
from tfcovseg.rundir import InputSpec
from tfcovseg.settings.bench import Architectures, Training
from tfcovseg.settings.data import Pipeline2D, Pipeline3D
from tfcovseg.settings.inference import Inference
from tfcovseg.train.precision import set_precision

GRID_CELL = Cell("lesions", "unet", "resnet18", "random")


def step3d(job: dict) -> dict:
    """Seconds per ``train_on_batch`` of the 95M U-Net (Adam, cross-entropy on logits)."""
    set_precision(job["precision"])
    batch, *size = job["shape"]
    model = unet3d()
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    image = rng.random((batch, *size, 1), dtype=np.float32)
    label = (rng.random((batch, *size)) > 0.9).astype(np.int32)
    return summarise(timed_calls(lambda: model.train_on_batch(image, label), job["steps"]))


def step2d(job: dict) -> dict:
    """Seconds per training step of the grid's Unet-resnet18 (Adam, the paper's soft Dice)."""
    set_precision(job["precision"])
    batch, height, width = job["shape"]
    model = build_cell_model(GRID_CELL, Architectures(), height)
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss=soft_dice_loss)
    rng = np.random.default_rng(0)
    image = rng.standard_normal((batch, height, width, 1), dtype=np.float32)
    mask = (rng.random((batch, height, width, 1)) > 0.9).astype(np.float32)
    return summarise(timed_calls(lambda: model.train_on_batch(image, mask), job["steps"]))


def epoch2d(job: dict) -> dict:
    """Seconds per epoch of a grid cell's training (``tfcovseg.bench.cell.train``) on phantoms:
    the first ``train_cases`` cases (2) train, the rest validate; the first epoch is not timed."""
    set_precision(job["precision"])
    dataset = load_dataset(job["data"])
    cases = sorted(dataset.cases, key=lambda c: c.id)
    split = job.get("train_cases", 2)
    batches = dict(experiment=GRID_CELL.experiment, batch_size=job["batch"], seed=0)
    pipeline = Pipeline2D()
    train_batches = bench_data.batches(dataset, cases[:split], pipeline, training=True, **batches)
    validation_batches = bench_data.batches(dataset, cases[split:], pipeline, training=False,
                                            **batches)
    model = build_cell_model(GRID_CELL, Architectures(), pipeline.size[0])
    train_slices = bench_data.slice_count(dataset, cases[:split])
    recorder = train(model, train_batches, validation_batches,
                     Training(epochs=job["epochs"], batch_size=job["batch"]),
                     train_slices=train_slices)
    epochs = [t + v for t, v in zip(recorder.train_seconds, recorder.validation_seconds)][1:]
    return summarise(epochs, train_slices=train_slices,
                     validation_slices=bench_data.slice_count(dataset, cases[split:]))


def pipeline(job: dict) -> dict:
    """Volumes (resize mode) or patches (patch mode) per second of the training pipeline."""
    dataset = load_dataset(job["data"])
    size = tuple(job["size"])
    sampling = {"size": size} if job["mode"] == "resize" else {"patch_size": size}
    cfg = Pipeline3D(mode=job["mode"], cache=job["cache"], **sampling)
    batches = volume_dataset(dataset, dataset.cases, cfg, batch_size=job["batch"], training=True)
    return summarise(passes_per_second(batches, job["seconds"]))


def passes_per_second(batches, seconds: float) -> list:
    """Volumes/s over runs of passes (``passes_per_chunk``) after the first pass (tracing;
    filling the cache), for ``seconds``.

    The passes come from one iterator over ``batches.repeat()``, as training reads its data
    (``tfcovseg.train.fit``) and as MONAI's persistent workers serve theirs: a new iterator of
    the augmenting pipeline costs about 0.17 s to set up (TensorFlow instantiates its graph),
    which training pays once per phase, not once per pass.
    """
    per_pass = sum(int(image.shape[0]) for image, _ in batches)
    chunk = per_pass * passes_per_chunk(per_pass)
    iterator = iter(batches.repeat())
    rates, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or not rates:
        chunk_start, volumes = time.perf_counter(), 0
        while volumes < chunk:
            image, _ = next(iterator)
            volumes += int(image.shape[0])
        rates.append(volumes / (time.perf_counter() - chunk_start))
    return rates


def predict(job: dict) -> dict:
    """Seconds to predict a whole CT with ``keras_predictor`` (patch mode, sliding window)."""
    set_precision("float32")
    window, overlap = tuple(job["window"]), job["overlap"]
    volume, spacing_mm = np.load(job["ct"]), np.asarray(job["spacing_mm"], np.float32)
    predictor = keras_predictor(unet3d(), InputSpec(mode="patch", size=window),
                                Inference(overlap=overlap))
    predictor(volume[tuple(slice(0, w) for w in window)], spacing_mm)  # traces: one window
    return summarise(timed_calls(lambda: predictor(volume, spacing_mm), 1, warmups=0),
                     windows=window_count(volume.shape, window, overlap))
