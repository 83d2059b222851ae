"""Sliding-window prediction over a whole volume with Gaussian importance blending (nnU-Net).

Windows of the model's input size tile the volume with the given overlap; each window's
prediction is weighted by a Gaussian centred on the window (sigma = 1/8 of the window along
each axis, as nnU-Net's ``_get_gaussian``), because predictions near a window's border see less
context. The blended value at a voxel is the weighted mean over the windows that cover it.
"""

import itertools
import math

import numpy as np

GAUSSIAN_SIGMA_SCALE = 1 / 8  # nnU-Net: sigma = window size / 8 along each axis
DEFAULT_OVERLAP = 0.5


def gaussian_importance(window) -> np.ndarray:
    """Separable Gaussian weights over a window, peak 1 at the centre, never 0."""
    weights = np.ones((), np.float64)
    for size in window:
        centre = (size - 1) / 2
        sigma = size * GAUSSIAN_SIGMA_SCALE
        axis = np.exp(-0.5 * ((np.arange(size) - centre) / sigma) ** 2)
        weights = np.multiply.outer(weights, axis)
    return (weights / weights.max()).astype(np.float32)


def window_starts(size: int, window: int, overlap: float) -> list:
    """Evenly spaced window starts covering ``[0, size)``, at most (1 - overlap) * window apart."""
    if size <= window:
        return [0]
    step = window * (1.0 - overlap)
    count = math.ceil((size - window) / step) + 1
    span = size - window
    return [round(i * span / (count - 1)) for i in range(count)]


def _pad_to_window(volume, window):
    """Pad each axis at the end up to the window size with the volume's minimum (air in CT, as
    the training pipeline pads patches)."""
    padding = [(0, max(w - s, 0)) for s, w in zip(volume.shape, window)]
    if any(after for _, after in padding):
        volume = np.pad(volume, padding, constant_values=volume.min())
    return volume


def _batches(items, batch_size):
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, batch_size)):
        yield batch


def sliding_window(volume, predict_fn, window, overlap: float = DEFAULT_OVERLAP,
                   batch_size: int = 1):
    """Blend ``predict_fn`` over windows of ``volume`` ([D, H, W]) into a [D, H, W] result.

    ``predict_fn`` maps a batch ``[n, *window]`` of windows to ``[n, *window]`` predictions
    (e.g. lesion probabilities). Volumes smaller than the window along an axis are padded at the
    end with their minimum and the padding is cut off again.
    """
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    window = tuple(int(w) for w in window)
    volume = np.asarray(volume, np.float32)
    original_shape = volume.shape
    volume = _pad_to_window(volume, window)
    importance = gaussian_importance(window)
    blended = np.zeros(volume.shape, np.float32)
    weight = np.zeros(volume.shape, np.float32)
    axes = [window_starts(s, w, overlap) for s, w in zip(volume.shape, window)]
    starts = itertools.product(*axes)
    regions = [tuple(slice(s, s + w) for s, w in zip(start, window)) for start in starts]
    for batch in _batches(regions, batch_size):
        predictions = np.asarray(predict_fn(np.stack([volume[r] for r in batch])), np.float32)
        for region, prediction in zip(batch, predictions):
            blended[region] += prediction * importance
            weight[region] += importance
    crop = tuple(slice(0, s) for s in original_shape)
    return blended[crop] / weight[crop]
