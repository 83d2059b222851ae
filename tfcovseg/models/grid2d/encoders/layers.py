"""Keras building blocks that compute exactly what the reference PyTorch modules compute, each
named after the PyTorch module it stands for.

Names: every block takes the module's path in a segmentation_models_pytorch state_dict
(``encoder.layer1.0.conv1``) and names its layer by one rule, ``layer_name``: dots become
underscores (``encoder_layer1_0_conv1``). The weights converter finds the layer of a state_dict
key by the same rule. An operation PyTorch runs without a module of its own (an addition, a
concatenation, a padding, an activation after a BatchNorm) is named by the path of the module it
follows or of the block running it, plus a word: ``encoder.layer1.0.bn1.relu``,
``encoder.layer1.0.add``, ``encoder.conv1.pad``.

Padding: PyTorch pads convolutions and poolings symmetrically. Keras' ``padding="same"`` agrees
only for stride 1; with stride 2 on an even input it pads one row at the bottom/right only, which
shifts every window. So strided blocks pad explicitly and then run ``"valid"``. BatchNorm uses
PyTorch's momentum (0.1 there, 0.9 in Keras' convention) so fine-tuning updates the statistics
alike.
"""

import tensorflow as tf

layers = tf.keras.layers

TORCH_BN_MOMENTUM = 0.9  # torch.nn.BatchNorm2d(momentum=0.1) in Keras' convention
TORCH_BN_EPS = 1e-5  # torch.nn.BatchNorm2d default


def layer_name(module_path: str) -> str:
    """The Keras layer name of a PyTorch module path: ``encoder.layer1.0.conv1`` ->
    ``encoder_layer1_0_conv1``."""
    return module_path.replace(".", "_")


def conv2d(x, filters, kernel, path, stride=1, padding=0, groups=1, use_bias=False):
    """``torch.nn.Conv2d(..., kernel, stride, padding, groups=groups, bias=use_bias)`` at ``path``.

    ``padding`` is PyTorch's (an int or (rows, columns)) or ((top, bottom), (left, right)).
    """
    kernel = _pair(kernel)
    x, mode = _padded(x, kernel, stride, padding, path)
    conv = GroupedConv2D if groups > 1 else layers.Conv2D
    return conv(filters, kernel, strides=stride, padding=mode, groups=groups, use_bias=use_bias,
                name=layer_name(path))(x)


def depthwise_conv2d(x, kernel, path, stride=1, padding=None):
    """``torch.nn.Conv2d(c, c, kernel, stride, padding, groups=c, bias=False)``; ``padding``
    as for ``conv2d``, PyTorch's usual ``kernel // 2`` by default."""
    padding = kernel // 2 if padding is None else padding
    x, mode = _padded(x, _pair(kernel), stride, padding, path)
    return layers.DepthwiseConv2D(kernel, strides=stride, padding=mode, use_bias=False,
                                  name=layer_name(path))(x)


def batch_norm(x, path, eps=TORCH_BN_EPS, momentum=TORCH_BN_MOMENTUM):
    return layers.BatchNormalization(epsilon=eps, momentum=momentum, name=layer_name(path))(x)


def relu(x, path, max_value=None):
    return layers.ReLU(max_value=max_value, name=layer_name(path))(x)


def add(tensors, path):
    return layers.Add(name=layer_name(path))(list(tensors))


def concat(tensors, path):
    return layers.Concatenate(name=layer_name(path))(list(tensors))


def max_pool(x, size, stride, path, padding=0):
    """``torch.nn.MaxPool2d(size, stride, padding)`` (padded cells never win, as in PyTorch)."""
    if padding:
        return TorchMaxPooling2D(size, stride, padding, name=layer_name(path))(x)
    return layers.MaxPooling2D(size, stride, padding="valid", name=layer_name(path))(x)


def feature_tap(main, kept, path):
    """``main``, with ``kept`` held in the model (see ``FeatureTap``)."""
    return FeatureTap(name=layer_name(path))([main, kept])


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
    """Returns its first input unchanged; the second is a branch no later layer consumes, held
    in the model: a decoder feature off the main path (DPN's ``relu(concat(residual, dense))``,
    smp 0.1.0 Xception's block11), or layers smp builds but does not run (EfficientNet's
    ``_conv_head``, the stages past a depth-3 PSPNet encoder), which are in its state_dict and
    parameter count. Without a consumer Keras would prune the branch from a functional model."""

    def call(self, inputs):
        return inputs[0]


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _padding_pairs(padding) -> tuple[tuple[int, int], tuple[int, int]]:
    """PyTorch's int or (rows, columns) padding as ((top, bottom), (left, right))."""
    if isinstance(padding, int):
        return ((padding, padding),) * 2
    return tuple((p, p) if isinstance(p, int) else tuple(p) for p in padding)


def _padded(x, kernel, stride, padding, path):
    """``x`` padded as PyTorch pads it, and the Keras padding mode to convolve it with."""
    padding = _padding_pairs(padding)
    if stride == 1 and all(k % 2 and p == ((k - 1) // 2,) * 2 for k, p in zip(kernel, padding)):
        return x, "same"  # identical to symmetric padding when the stride is 1
    if any(any(p) for p in padding):
        x = layers.ZeroPadding2D(padding, name=layer_name(f"{path}.pad"))(x)
    return x, "valid"
