"""Keras building blocks that compute exactly what the reference PyTorch modules compute.

PyTorch pads convolutions and poolings symmetrically. Keras' ``padding="same"`` agrees only for
stride 1; with stride 2 on an even input it pads one row at the bottom/right only, which shifts
every window. So strided blocks pad explicitly and then run ``"valid"``. BatchNorm uses PyTorch's
momentum (0.1 there, 0.9 in Keras' convention) so fine-tuning updates the statistics alike.
"""

import tensorflow as tf

layers = tf.keras.layers

TORCH_BN_MOMENTUM = 0.9  # torch.nn.BatchNorm2d(momentum=0.1) in Keras' convention
TORCH_BN_EPS = 1e-5  # torch.nn.BatchNorm2d default


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def conv2d(x, filters, kernel, name, stride=1, padding=0, groups=1, use_bias=False, activation=None):
    """``torch.nn.Conv2d(..., kernel, stride, padding, groups, bias)`` named ``name``."""
    kernel, padding = _pair(kernel), _pair(padding)
    same = tuple((k - 1) // 2 for k in kernel)
    if stride == 1 and padding == same and all(k % 2 for k in kernel):
        mode = "same"  # identical to symmetric padding when the stride is 1
    else:
        mode = "valid"
        if any(padding):
            x = layers.ZeroPadding2D(padding, name=f"{name}/pad")(x)
    conv = GroupedConv2D if groups > 1 else layers.Conv2D
    return conv(filters, kernel, strides=stride, padding=mode, groups=groups, use_bias=use_bias,
                activation=activation, name=name)(x)


def depthwise_conv2d(x, kernel, name):
    """``torch.nn.Conv2d(c, c, kernel, padding=kernel // 2, groups=c, bias=False)``."""
    return layers.DepthwiseConv2D(kernel, padding="same", use_bias=False, name=name)(x)


def batch_norm(x, name, eps=TORCH_BN_EPS):
    return layers.BatchNormalization(epsilon=eps, momentum=TORCH_BN_MOMENTUM, name=name)(x)


def relu(x, name):
    return layers.ReLU(name=name)(x)


def concat(tensors, name):
    return layers.Concatenate(name=name)(list(tensors))


def max_pool(x, size, stride, name, padding=0):
    """``torch.nn.MaxPool2d(size, stride, padding)`` (padded cells never win, as in PyTorch)."""
    if padding:
        return TorchMaxPooling2D(size, stride, padding, name=name)(x)
    return layers.MaxPooling2D(size, stride, padding="valid", name=name)(x)


@tf.keras.utils.register_keras_serializable(package="tfcovseg")
class GroupedConv2D(layers.Conv2D):
    """``Conv2D(groups > 1)`` run as the plain TensorFlow op.

    tf_keras 2.21 routes grouped convolutions through an XLA-compiled function (a workaround for
    old CPU kernels, its TODO b/213173659); on this CPU that is ~20x slower than the op itself.
    """

    def call(self, inputs):
        outputs = self.convolution_op(inputs, self.kernel)
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, self.bias)
        return outputs if self.activation is None else self.activation(outputs)


@tf.keras.utils.register_keras_serializable(package="tfcovseg")
class TorchMaxPooling2D(layers.Layer):
    """Max pooling after symmetric ``-inf`` padding: ``torch.nn.MaxPool2d(size, stride, padding)``.

    Zero padding would be wrong where the input can be negative (Xception pools BatchNorm
    outputs), and Keras' "same" puts the padding on one side only.
    """

    def __init__(self, pool_size, strides, padding, **kwargs):
        super().__init__(**kwargs)
        self.pool_size, self.strides, self.padding = pool_size, strides, padding

    def call(self, x):
        p = self.padding
        x = tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], constant_values=float("-inf"))
        return tf.nn.max_pool2d(x, self.pool_size, self.strides, "VALID")

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides,
                "padding": self.padding}


@tf.keras.utils.register_keras_serializable(package="tfcovseg")
class ChannelSplit(layers.Layer):
    """``x[:, :n]`` and ``x[:, n:]`` of PyTorch: split the channels at ``sizes``."""

    def __init__(self, sizes, **kwargs):
        super().__init__(**kwargs)
        self.sizes = list(sizes)

    def call(self, x):
        return tf.split(x, self.sizes, axis=-1)

    def get_config(self):
        return {**super().get_config(), "sizes": self.sizes}


@tf.keras.utils.register_keras_serializable(package="tfcovseg")
class FeatureTap(layers.Layer):
    """Returns its first input unchanged; the second is a decoder feature the main path does not
    consume (DPN's ``relu(concat(residual, dense))``). Without a consumer Keras would prune it
    from the functional model and segmentation_models could not pick it by name."""

    def call(self, inputs):
        return inputs[0]
