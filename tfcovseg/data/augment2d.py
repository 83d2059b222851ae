"""2D augmentations of Bizopoulos et al. as TensorFlow ops, redrawn every epoch.

Horizontal and vertical flips (probability 0.5 each), then a rotation uniform in
[-180, 180] degrees and a scale uniform in [0.5, 1.5] about the slice centre with zero
padding (the normalised value 0, i.e. the mean of -500 HU, as torchvision's ``RandomAffine``
fills). The image is resampled bilinearly, the mask by nearest neighbour with the same
transform.
"""

import math

import tensorflow as tf

from tfcovseg.settings.data import Augment2D

ZERO_PADDING = 0.0


def augment2d(image, mask, seed, cfg: Augment2D):
    """Augment one slice ``image`` and its ``mask`` (both float [H, W, C]) with one geometry."""
    if not cfg.enabled:
        return image, mask
    draws = tf.random.stateless_uniform([4], seed)
    for draw, p, axis in ((draws[0], cfg.horizontal_flip, 1), (draws[1], cfg.vertical_flip, 0)):
        flip = draw < p
        image = tf.cond(flip, lambda x=image, a=axis: tf.reverse(x, [a]), lambda x=image: x)
        mask = tf.cond(flip, lambda x=mask, a=axis: tf.reverse(x, [a]), lambda x=mask: x)
    low, high = cfg.rotation_degrees
    angle = (low + (high - low) * draws[2]) * math.pi / 180.0
    scale = cfg.scale[0] + (cfg.scale[1] - cfg.scale[0]) * draws[3]
    transform = rotation_scale_transform(tf.shape(image)[:2], angle, scale)
    return warp(image, transform, "BILINEAR"), warp(mask, transform, "NEAREST")


def rotation_scale_transform(shape, angle, scale):
    """The 8-vector taking output (x, y) to input (x, y): rotation and scale about the centre.

    Forward: ``p' = scale * R(angle) (p - c) + c``; sampling applies the inverse.
    """
    centre_y = (tf.cast(shape[0], tf.float32) - 1.0) / 2.0
    centre_x = (tf.cast(shape[1], tf.float32) - 1.0) / 2.0
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    a0, a1, b0, b1 = cos, sin, -sin, cos
    a2 = centre_x - a0 * centre_x - a1 * centre_y
    b2 = centre_y - b0 * centre_x - b1 * centre_y
    return tf.stack([a0, a1, a2, b0, b1, b2, 0.0, 0.0])


def warp(slice_, transform, interpolation: str):
    """Resample one ``[H, W, C]`` slice with a projective ``transform``; zero outside."""
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=slice_[None],
        transforms=transform[None],
        output_shape=tf.shape(slice_)[:2],
        fill_value=ZERO_PADDING,
        interpolation=interpolation,
        fill_mode="CONSTANT",
    )
    return out[0]
