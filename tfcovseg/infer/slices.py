"""A 2D grid cell applied to a whole CT, slice by slice, with the bench's preprocessing.

Every axial slice of a raw HU ``[D, H, W]`` volume goes through what the bench's pipeline
(``tfcovseg.data.pipeline2d.normalised_slices``) does to a training slice: HU normalised by the
cell's ``Intensity`` (mean -500, std 500), multiplied by the lung mask for a
``lesions_in_lungs`` cell (0 = -500 HU outside the lungs), resized bilinearly
(``align_corners=True``) to the cell's size (512x512); the cell's sigmoid probabilities are
resized back to the slice's own grid. Slices go through the network ``batch_size`` at a time.

Test-time mirroring flips each slice along H and W (axes 1 and 2); a flip along D only
reorders the slices of a 2D model, so axis 0 is left out (``in_plane_axes``).
Written in TensorFlow ops, so the export serves the same function.
"""

import tensorflow as tf

from tfcovseg.data.intensity import normalise
from tfcovseg.models.sliding_window import THRESHOLD, mirrored
from tfcovseg.resize import resize_linear
from tfcovseg.rundir import SliceSpec

SLICE_BATCH = 8  # slices per network call when none is given (2 x 512x512 trains in ~0.5 GB)
SLICE_AXIS = 0  # D: the axis a 2D model's slices are stacked along


def in_plane_axes(tta_axes) -> tuple | None:
    """The mirroring axes that change a slice model's prediction (H, W); None: no mirroring."""
    if tta_axes is None:
        return None
    axes = tuple(axis for axis in tta_axes if axis != SLICE_AXIS)
    return axes or None


def slice_probabilities(model, volumes_hu, spec: SliceSpec, lungs=None,
                        batch_size: int = SLICE_BATCH, tta_axes=None):
    """Raw HU ``[B, D, H, W]`` -> ``[B, D, H, W]`` probabilities of the cell's target.

    ``lungs`` (``[B, D, H, W]``, non-zero inside the lungs): the input mask a
    ``lesions_in_lungs`` cell takes; ignored by the other experiments.
    """
    scaled = normalise(volumes_hu, spec.intensity)  # min-max, were it set, per volume
    if spec.experiment == "lesions_in_lungs":
        scaled = scaled * tf.cast(tf.cast(lungs, tf.bool), tf.float32)
    axes = in_plane_axes(tta_axes)

    def one_volume(volume):
        grid = tf.unstack(tf.shape(volume), num=3)
        resized = resize_linear(volume[..., None], (grid[0], *spec.size))[..., 0]

        def predict(stacks):  # [1, D, h, w] -> [1, D, h, w]
            return _batched(model, stacks[0], spec.size, batch_size)[None]

        if axes is not None:
            predict = mirrored(predict, axes)
        probabilities = predict(resized[None])[0]
        return resize_linear(probabilities[..., None], grid)[..., 0]

    return tf.map_fn(one_volume, scaled, fn_output_signature=tf.float32)


def lung_mask(model, volumes_hu, spec: SliceSpec, batch_size: int = SLICE_BATCH):
    """The lungs a ``lungs`` cell finds in raw HU ``[B, D, H, W]`` (bool, same shape)."""
    return slice_probabilities(model, volumes_hu, spec, batch_size=batch_size) > THRESHOLD


def _batched(model, slices, size, batch_size: int):
    """The model's probabilities of ``slices`` [N, *size], ``batch_size`` slices per call."""
    count = tf.shape(slices)[0]
    chunks = -(-count // batch_size)
    padded = tf.pad(slices, [[0, chunks * batch_size - count], [0, 0], [0, 0]])
    stacked = tf.reshape(padded, [chunks, batch_size, *size, 1])

    def one_chunk(chunk):
        return tf.cast(model(chunk, training=False), tf.float32)[..., 0]

    out = tf.map_fn(one_chunk, stacked, fn_output_signature=tf.float32)
    return tf.reshape(out, [-1, *size])[:count]
