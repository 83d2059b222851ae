"""Sliding-window prediction over a whole volume with Gaussian importance blending (nnU-Net).

Windows of the model's input size tile the volume with the given overlap; each window's
prediction is weighted by a Gaussian centred on the window (sigma = 1/8 of the window along
each axis, as nnU-Net's ``_get_gaussian``), because predictions near a window's border see less
context. The blended value at a voxel is the weighted mean over the windows that cover it.

Written in TensorFlow ops with dynamic shapes, so the same function runs eagerly, inside a
``tf.function`` and inside the exported SavedModel (``tfcovseg.infer.export``).
``sliding_window_probabilities`` applies a U-Net this way; training's tuning Dice of patch-mode
runs (``tfcovseg.train.callbacks``) and prediction share it.

Test-time mirroring (``mirrored``, nnU-Net's ``_internal_maybe_mirror_and_predict``): each
window is also predicted flipped along every combination of the chosen axes, each prediction
flipped back, and the probabilities averaged (2^3 = 8 predictions for D, H and W).
"""

import itertools

import numpy as np
import tensorflow as tf

from tfcovseg.settings.inference import DEFAULT_OVERLAP, check_sliding_window

GAUSSIAN_SIGMA_SCALE = 1 / 8  # nnU-Net: sigma = window size / 8 along each axis
LESION_CLASS = 1
THRESHOLD = 0.5  # a voxel is lesion when its probability exceeds this (argmax of 2 classes)


def gaussian_importance(window) -> np.ndarray:
    """Separable Gaussian weights over a window, peak 1 at the centre, never 0."""
    weights = np.ones((), np.float64)
    for size in window:
        centre = (size - 1) / 2
        sigma = size * GAUSSIAN_SIGMA_SCALE
        axis = np.exp(-0.5 * ((np.arange(size) - centre) / sigma) ** 2)
        weights = np.multiply.outer(weights, axis)
    return (weights / weights.max()).astype(np.float32)


def window_starts(size, window: int, overlap: float):
    """Evenly spaced window starts covering ``[0, size)``, at most (1 - overlap) * window apart."""
    span = tf.cast(tf.maximum(size - window, 0), tf.float32)
    count = tf.cast(tf.math.ceil(span / (window * (1.0 - overlap))), tf.int32) + 1
    positions = tf.range(count, dtype=tf.float32) * span / tf.cast(tf.maximum(count - 1, 1), tf.float32)
    return tf.cast(tf.round(positions), tf.int32)


def _pad_to_window(volume, window):
    """Pad each axis at the end up to the window size with the volume's minimum (air in CT, as
    the training pipeline pads patches)."""
    missing = tf.maximum(tf.constant(window) - tf.shape(volume), 0)
    paddings = tf.stack([tf.zeros_like(missing), missing], axis=1)
    return tf.pad(volume, paddings, constant_values=tf.reduce_min(volume))


def _window_offsets(window) -> np.ndarray:
    """Index offsets ``[voxels, 3]`` of every voxel of a window from its corner."""
    grid = np.meshgrid(*(np.arange(w) for w in window), indexing="ij")
    return np.stack(grid, axis=-1).reshape(-1, 3).astype(np.int32)


def sliding_window(volume, predict_fn, window, overlap: float = DEFAULT_OVERLAP,
                   batch_size: int = 1):
    """Blend ``predict_fn`` over windows of ``volume`` ([D, H, W]) into a [D, H, W] result.

    ``predict_fn`` maps a batch ``[n, *window]`` of windows to ``[n, *window]`` predictions
    (e.g. lesion probabilities) with TensorFlow ops (a Keras model does). Volumes smaller than
    the window along an axis are padded at the end with their minimum and the padding is cut
    off again.
    """
    check_sliding_window(overlap, batch_size)
    window = [int(w) for w in window]
    volume = tf.convert_to_tensor(volume, tf.float32)
    padded = _pad_to_window(volume, window)
    shape = tf.shape(padded)
    starts = [window_starts(shape[axis], window[axis], overlap) for axis in range(3)]
    corners = tf.reshape(tf.stack(tf.meshgrid(*starts, indexing="ij"), axis=-1), [-1, 3])
    importance = tf.reshape(tf.constant(gaussian_importance(window)), [1, -1])
    offsets = tf.constant(_window_offsets(window))
    blended = tf.zeros(shape, tf.float32)
    weight = tf.zeros(shape, tf.float32)
    for first in tf.range(0, tf.shape(corners)[0], batch_size):
        batch = corners[first:first + batch_size]
        indices = batch[:, None, :] + offsets[None]  # [n, voxels, 3]
        windows = tf.reshape(tf.gather_nd(padded, indices), [-1, *window])
        predictions = tf.reshape(tf.cast(predict_fn(windows), tf.float32), [-1, offsets.shape[0]])
        weights = tf.broadcast_to(importance, tf.shape(predictions))
        blended = tf.tensor_scatter_nd_add(blended, indices, predictions * weights)
        weight = tf.tensor_scatter_nd_add(weight, indices, weights)
    size = tf.shape(volume)
    return (blended / weight)[: size[0], : size[1], : size[2]]


def mirror_flips(axes) -> np.ndarray:
    """Every combination of flips of ``axes`` (0, 1, 2 = D, H, W) as rows of 3 booleans,
    starting with no flip: ``2 ** len(axes)`` rows."""
    rows = []
    for chosen in itertools.product((False, True), repeat=len(axes)):
        row = [False] * 3
        for axis, flip in zip(axes, chosen):
            row[axis] = flip
        rows.append(row)
    return np.array(rows, bool)


def mirrored(predict_fn, axes):
    """``predict_fn`` (``[n, D, H, W]`` in and out) averaged over the flips of ``axes``.

    The flips run in one graph loop, so the model is traced once however many flips there are.
    """
    flips = tf.constant(mirror_flips(axes))

    def predict(windows):
        windows = tf.convert_to_tensor(windows, tf.float32)
        total = tf.zeros_like(windows)
        for row in tf.range(tf.shape(flips)[0]):
            flip = flips[row]
            prediction = tf.cast(predict_fn(_flip(windows, flip)), tf.float32)
            total += _flip(prediction, flip)
        return total / tf.cast(tf.shape(flips)[0], tf.float32)

    return predict


def _flip(windows, flip):
    """``windows`` [n, D, H, W] reversed along the spatial axes where ``flip`` (bool [3]) is true."""
    for axis in range(3):
        windows = tf.cond(flip[axis], lambda w=windows, a=axis: tf.reverse(w, [a + 1]),
                          lambda w=windows: w)
    return windows


def lesion_mask(probabilities) -> np.ndarray:
    return np.asarray(probabilities) > THRESHOLD


def window_probabilities(model, windows):
    """Lesion probabilities of scaled ``[B, D, H, W]`` windows at the model's own size."""
    x = windows[..., None]
    channels = model.input_shape[-1]
    if channels and channels > 1:  # grey repeated to the encoder's RGB channels (Bressem et al.)
        x = tf.repeat(x, channels, axis=-1)
    logits = tf.cast(model(x, training=False), tf.float32)
    return tf.nn.softmax(logits, axis=-1)[..., LESION_CLASS]


def sliding_window_probabilities(model, scaled, window, overlap=DEFAULT_OVERLAP, batch_size=1,
                                 tta_axes=None):
    """Lesion probabilities of scaled volumes ``[B, D, H, W]`` by a sliding ``window``, per
    volume; ``tta_axes``: each window mirrored along those axes (``mirrored``; None: not)."""

    def predict_fn(windows):
        return window_probabilities(model, windows)

    if tta_axes is not None:
        predict_fn = mirrored(predict_fn, tta_axes)

    def one_volume(volume):
        return sliding_window(volume, predict_fn, window, overlap, batch_size)

    return tf.map_fn(one_volume, scaled)
