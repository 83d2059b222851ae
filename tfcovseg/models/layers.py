"""Keras building blocks that behave as their PyTorch counterparts in torchvision and fastai.

Two layers Keras lacks, registered so saved models load without ``custom_objects``:

- ``ResizeLike``: nearest resize of a tensor to another tensor's D, H, W with PyTorch's legacy
  rule (fastai's ``F.interpolate(..., mode="nearest")`` in the U-Net blocks and ``ResizeToOrig``).
- ``InstanceNorm``: per-sample, per-channel normalisation over D, H, W with a learned scale and
  shift, as ``nn.InstanceNorm3d(affine=True)`` (the paper text's norm for the skips).

and two factories: ``batch_norm`` (``nn.BatchNorm3d``'s epsilon and momentum) and
``torch_conv3d`` (``nn.Conv3d`` with PyTorch's symmetric padding).
"""

import tensorflow as tf

from tfcovseg.resize import SPATIAL_AXES, resize_nearest

# PyTorch's default epsilon for batch and instance norm.
TORCH_NORM_EPSILON = 1e-5


@tf.keras.utils.register_keras_serializable(package="tfcovseg")
class ResizeLike(tf.keras.layers.Layer):
    """``ResizeLike()([x, reference])``: ``x`` resized (nearest) to ``reference``'s D, H, W."""

    def call(self, inputs):
        x, reference = inputs
        size = tf.shape(reference)[1:4]
        resized = resize_nearest(x, [size[0], size[1], size[2]])
        resized.set_shape(self.compute_output_shape([x.shape, reference.shape]))
        return resized

    def compute_output_shape(self, input_shape):
        x_shape, reference_shape = (tf.TensorShape(s) for s in input_shape)
        return tf.TensorShape([x_shape[0], *reference_shape[1:4], x_shape[-1]])


@tf.keras.utils.register_keras_serializable(package="tfcovseg")
class InstanceNorm(tf.keras.layers.Layer):
    """Instance normalisation of ``[B, D, H, W, C]`` with per-channel ``gamma`` and ``beta``."""

    def __init__(self, epsilon=TORCH_NORM_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        channels = input_shape[-1]
        self.gamma = self.add_weight(name="gamma", shape=(channels,), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(channels,), initializer="zeros")
        super().build(input_shape)

    def call(self, x):
        # Statistics in float32 even under mixed precision: bf16 variances of large volumes are coarse.
        x32 = tf.cast(x, tf.float32)
        mean, variance = tf.nn.moments(x32, axes=[a % 5 for a in SPATIAL_AXES], keepdims=True)
        normed = (x32 - mean) * tf.math.rsqrt(variance + self.epsilon)
        gamma, beta = tf.cast(self.gamma, tf.float32), tf.cast(self.beta, tf.float32)
        return tf.cast(normed * gamma + beta, x.dtype)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


# PyTorch's BatchNorm momentum 0.1 weighs the new batch; Keras' momentum weighs the old average.
TORCH_BN_MOMENTUM = 0.9


def batch_norm(name, gamma_initializer="ones", beta_initializer="zeros", dtype=None):
    """``nn.BatchNorm3d`` with PyTorch's epsilon and momentum, in Keras' convention."""
    return tf.keras.layers.BatchNormalization(
        momentum=TORCH_BN_MOMENTUM, epsilon=TORCH_NORM_EPSILON, name=name,
        gamma_initializer=gamma_initializer, beta_initializer=beta_initializer, dtype=dtype,
    )


def torch_conv3d(x, filters, kernel, strides, name, initializer, use_bias=False):
    """``nn.Conv3d(padding=(k - 1) // 2)``: symmetric zero padding, as PyTorch pads.

    Keras' ``padding="same"`` pads the extra row at the end when a stride is 2; padding
    explicitly keeps every output equal to PyTorch's for odd and even sizes alike.
    """
    kernel = _triple(kernel)
    strides = _triple(strides)
    padding = tuple((k - 1) // 2 for k in kernel)
    conv_padding = "valid"
    if all(s == 1 for s in strides):
        conv_padding = "same"  # equals symmetric padding for odd kernels at stride 1
    elif any(padding):
        x = tf.keras.layers.ZeroPadding3D(padding, name=f"{name}_pad")(x)
    return tf.keras.layers.Conv3D(
        filters, kernel, strides=strides, padding=conv_padding, use_bias=use_bias,
        kernel_initializer=initializer, name=name,
    )(x)


def _triple(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * 3
