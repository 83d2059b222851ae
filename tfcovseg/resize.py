"""3D resizing with PyTorch's rules, as TensorFlow ops on ``[..., D, H, W, C]`` tensors.

The authors' pipeline and network use PyTorch's ``F.interpolate``: trilinear with
``align_corners=True`` for images and the legacy ``nearest`` rule
``src = min(floor(dst * in / out), in - 1)`` for masks and inside the decoder.
``tf.image.resize`` follows neither, so both are built here from gathers along each axis;
they work with dynamic shapes and inside SavedModel graphs.
"""

import tensorflow as tf

SPATIAL_AXES = (-4, -3, -2)  # D, H, W of a [..., D, H, W, C] tensor


def nearest_indices(size_in, size_out):
    """PyTorch's legacy nearest source index for each output index along one axis."""
    size_in = tf.cast(size_in, tf.int32)
    scale = tf.cast(size_in, tf.float64) / tf.cast(size_out, tf.float64)
    src = tf.cast(tf.floor(tf.cast(tf.range(size_out), tf.float64) * scale), tf.int32)
    return tf.minimum(src, size_in - 1)


def resize_nearest(x, size):
    """Nearest resize of the D, H, W axes of ``x`` ([..., D, H, W, C]) to ``size``."""
    x = tf.convert_to_tensor(x)
    for axis, out in zip(SPATIAL_AXES, size):
        rank_axis = axis % x.shape.rank
        x = tf.gather(x, nearest_indices(tf.shape(x)[rank_axis], out), axis=rank_axis)
    return x


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
