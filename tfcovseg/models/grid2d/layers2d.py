"""Keras layers for segmentation_models_pytorch's decoders where Keras has no exact twin.

- ``BilinearUpsampling2D(scale)``: ``nn.Upsample(scale_factor=scale, mode="bilinear",
  align_corners=True)``; Keras' ``UpSampling2D(interpolation="bilinear")`` samples half-pixel
  centres and gives other values.
- ``BilinearResizeLike()([x, reference])``: ``F.interpolate(x, size=reference's H, W,
  mode="bilinear", align_corners=True)`` (PSPNet's branches, back to the pooled map's size).
- ``AdaptiveAveragePooling2D(bins)``: ``nn.AdaptiveAvgPool2d(bins)``, PyTorch's bin edges
  ``floor(i * size / bins)`` to ``ceil((i + 1) * size / bins)`` (bins overlap when ``bins``
  does not divide the size), for any input size.

The bilinear layers run TensorFlow's own ``align_corners`` resize (``tf.compat.v1.image.resize``),
which computes PyTorch's sampling positions.
"""

import tensorflow as tf

layers = tf.keras.layers


@tf.keras.utils.register_keras_serializable(package="tfcovseg")
class BilinearUpsampling2D(layers.Layer):
    """Bilinear upsampling of H and W by an integer ``scale``, corners aligned (PyTorch's rule)."""

    def __init__(self, scale: int, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, x):
        size = tf.shape(x)[1:3] * self.scale
        resized = _resize_aligned(x, size)
        resized.set_shape(self.compute_output_shape(x.shape))
        return resized

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = tf.TensorShape(input_shape).as_list()
        scaled = [None if s is None else s * self.scale for s in (height, width)]
        return tf.TensorShape([batch, *scaled, channels])

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@tf.keras.utils.register_keras_serializable(package="tfcovseg")
class BilinearResizeLike(layers.Layer):
    """``BilinearResizeLike()([x, reference])``: ``x`` resized to ``reference``'s H and W."""

    def call(self, inputs):
        x, reference = inputs
        resized = _resize_aligned(x, tf.shape(reference)[1:3])
        resized.set_shape(self.compute_output_shape([x.shape, reference.shape]))
        return resized

    def compute_output_shape(self, input_shape):
        x_shape, reference_shape = (tf.TensorShape(s).as_list() for s in input_shape)
        return tf.TensorShape([x_shape[0], *reference_shape[1:3], x_shape[-1]])


@tf.keras.utils.register_keras_serializable(package="tfcovseg")
class AdaptiveAveragePooling2D(layers.Layer):
    """Average pooling to ``bins x bins`` cells with PyTorch's adaptive bin edges."""

    def __init__(self, bins: int, **kwargs):
        super().__init__(**kwargs)
        self.bins = bins

    def call(self, x):
        shape = tf.shape(x)
        rows, columns = self._averaging(shape[1], x.dtype), self._averaging(shape[2], x.dtype)
        pooled = tf.einsum("ih,bhwc,jw->bijc", rows, x, columns)
        pooled.set_shape(self.compute_output_shape(x.shape))
        return pooled

    def _averaging(self, size, dtype):
        """``[bins, size]``: row i averages the input cells of bin i along one axis."""
        index = tf.range(self.bins)[:, None]
        start = index * size // self.bins
        end = -(-(index + 1) * size // self.bins)  # ceil
        cells = tf.range(size)[None, :]
        inside = tf.cast((cells >= start) & (cells < end), dtype)
        return inside / tf.cast(end - start, dtype)

    def compute_output_shape(self, input_shape):
        batch, _, _, channels = tf.TensorShape(input_shape).as_list()
        return tf.TensorShape([batch, self.bins, self.bins, channels])

    def get_config(self):
        return {**super().get_config(), "bins": self.bins}


def _resize_aligned(x, size):
    resized = tf.compat.v1.image.resize(x, size, method=tf.image.ResizeMethod.BILINEAR,
                                        align_corners=True)
    return tf.cast(resized, x.dtype)  # the resize computes in float32 (mixed precision)
