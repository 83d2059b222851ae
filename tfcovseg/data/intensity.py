"""Intensity preprocessing shared by training, prediction and the exported SavedModel.

The authors (Bressem et al.) clip RICORD to [-2000, 500] HU at conversion and then scale every
volume to [0, 1] by its own min and max, with no Kinetics mean/std; Bizopoulos et al.
normalise HU with mean -500 and std 500. Both are ``Intensity`` settings.
"""


import tensorflow as tf

from tfcovseg.settings.data import Intensity

MINMAX_EPS = 1e-8


def normalise(volume, intensity: Intensity):
    """Clip and scale ``[..., D, H, W]`` volumes; min-max is taken per volume (last 3 axes)."""
    x = tf.cast(volume, tf.float32)
    if intensity.clip is not None:
        x = tf.clip_by_value(x, intensity.clip[0], intensity.clip[1])
    if intensity.scaling == "minmax":
        axes = [-3, -2, -1]
        low = tf.reduce_min(x, axis=axes, keepdims=True)
        high = tf.reduce_max(x, axis=axes, keepdims=True)
        return (x - low) / tf.maximum(high - low, MINMAX_EPS)
    return (x - intensity.mean) / intensity.std
