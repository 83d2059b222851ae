"""3D resizing with PyTorch's rules, as TensorFlow ops on ``[..., D, H, W, C]`` tensors.

The authors' pipeline and network use PyTorch's ``F.interpolate``: trilinear with
``align_corners=True`` for images and the legacy ``nearest`` rule
``src = min(floor(dst * in / out), in - 1)`` for masks and inside the decoder.
``tf.image.resize`` follows neither, so both are built here from gathers along each axis;
they work with dynamic shapes and inside SavedModel graphs.

Resampling to a voxel spacing (patch mode's target spacing, as nnU-Net's plan) picks the new
size ``round(size * spacing / target)`` per axis (nnU-Net's ``compute_new_shape``) and resizes
with ``align_corners=True``: the first and last voxel centres stay in place, so the volume's
extent, centre and position are kept and resampling back to the original size returns the
original grid (the resampled voxels are ``(size - 1) * spacing / (new size - 1)`` apart, within
half a voxel of the target over the volume). Masks use the nearest voxel of that same mapping
(``resize_nearest(..., align_corners=True)``), so they stay aligned with the image.
"""

import tensorflow as tf

SPATIAL_AXES = (-4, -3, -2)  # D, H, W of a [..., D, H, W, C] tensor


def nearest_indices(size_in, size_out):
    """PyTorch's legacy nearest source index for each output index along one axis."""
    size_in = tf.cast(size_in, tf.int32)
    scale = tf.cast(size_in, tf.float64) / tf.cast(size_out, tf.float64)
    src = tf.cast(tf.floor(tf.cast(tf.range(size_out), tf.float64) * scale), tf.int32)
    return tf.minimum(src, size_in - 1)


def aligned_nearest_indices(size_in, size_out):
    """The nearest source index of ``resize_linear``'s ``align_corners=True`` positions."""
    size_in = tf.cast(size_in, tf.int32)
    scale = tf.cast(size_in - 1, tf.float64) / tf.cast(tf.maximum(size_out - 1, 1), tf.float64)
    src = tf.cast(tf.floor(tf.cast(tf.range(size_out), tf.float64) * scale + 0.5), tf.int32)
    return tf.minimum(src, size_in - 1)


def resize_nearest(x, size, align_corners: bool = False):
    """Nearest resize of the D, H, W axes of ``x`` ([..., D, H, W, C]) to ``size``.

    PyTorch's legacy rule by default; ``align_corners``: the voxel nearest to the position
    ``resize_linear`` samples (for masks resampled beside a trilinear image).
    """
    x = tf.convert_to_tensor(x)
    indices = aligned_nearest_indices if align_corners else nearest_indices
    for axis, out in zip(SPATIAL_AXES, size):
        rank_axis = axis % x.shape.rank
        x = tf.gather(x, indices(tf.shape(x)[rank_axis], out), axis=rank_axis)
    return x


def resampled_size(size, spacing_mm, target_spacing_mm) -> list:
    """The D, H, W sizes (int32 scalars) of a ``size`` grid of ``spacing_mm`` voxels resampled
    to ``target_spacing_mm``: ``round(size * spacing / target)``, rounding halves up.

    0 along an axis means the volume is thinner than half a target voxel there
    (``check_resampled_size``).
    """
    size = tf.cast(tf.convert_to_tensor(size), tf.float64)
    ratio = (tf.cast(tf.convert_to_tensor(spacing_mm), tf.float64)
             / tf.cast(tf.convert_to_tensor(target_spacing_mm), tf.float64))
    new_size = tf.cast(tf.floor(size * ratio + 0.5), tf.int32)
    return tf.unstack(new_size, num=len(SPATIAL_AXES))


def check_resampled_size(new_size):
    """An in-graph check that every resampled axis keeps at least one voxel."""
    return tf.debugging.assert_positive(
        tf.stack(new_size),
        message="the volume is thinner than half a voxel of the target spacing along an axis")


def resize_linear(x, size):
    """Trilinear resize with ``align_corners=True`` of the D, H, W axes of ``x``."""
    x = tf.convert_to_tensor(x)
    for axis, out in zip(SPATIAL_AXES, size):
        rank_axis = axis % x.shape.rank
        size_in = tf.shape(x)[rank_axis]
        scale = tf.where(
            out > 1,
            tf.cast(size_in - 1, tf.float32) / tf.cast(tf.maximum(out - 1, 1), tf.float32),
            0.0,
        )
        src = tf.cast(tf.range(out), tf.float32) * scale
        lo = tf.minimum(tf.cast(tf.floor(src), tf.int32), size_in - 1)
        hi = tf.minimum(lo + 1, size_in - 1)
        weight = tf.cast(src - tf.cast(lo, tf.float32), x.dtype)
        shape = [1] * x.shape.rank
        shape[rank_axis] = -1
        weight = tf.reshape(weight, shape)
        x_lo = tf.gather(x, lo, axis=rank_axis)
        x_hi = tf.gather(x, hi, axis=rank_axis)
        x = x_lo + (x_hi - x_lo) * weight
    return x
