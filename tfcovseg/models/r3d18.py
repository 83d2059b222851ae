"""torchvision's R3D-18 as a Keras network, layer for layer.

``VideoResNet(BasicBlock, [Conv3DSimple] * 4, [2, 2, 2, 2], BasicStem)`` without its pooling and
classifier: a stem (Conv3d 64, kernel 3x7x7, stride 1x2x2, padding 1x3x3, BN, ReLU) and four
stages of two residual blocks (64/128/256/512 channels, strides 1/2/2/2 on all three axes).
Layers are named after torchvision's modules (``layer2.0.conv1.0`` is ``encoder_layer2_0_conv1``)
so converters map weights by name; the U-Net builds the same layers and taps the same outputs.
"""

import numpy as np
import tensorflow as tf

from tfcovseg.errors import TfcovsegError
from tfcovseg.models.layers import batch_norm, torch_conv3d

PREFIX = "encoder_"
STEM_CHANNELS = 64
STEM_KERNEL = (3, 7, 7)
STEM_STRIDES = (1, 2, 2)
STAGE_CHANNELS = (64, 128, 256, 512)
STAGE_STRIDES = (1, 2, 2, 2)
BLOCKS_PER_STAGE = 2
STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")
STEM_CONV = f"{PREFIX}stem_conv"

# torchvision initialises its convolutions with kaiming_normal_(mode="fan_out", nonlinearity="relu").
# A config, not an instance: Keras gives every layer a fresh initializer (distinct kernels).
ENCODER_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {"scale": 2.0, "mode": "fan_out", "distribution": "untruncated_normal"},
}


def stage_output_name(stage: str) -> str:
    """Name of the layer whose output is ``stage`` (one of ``STAGES``)."""
    if stage == "stem":
        return f"{PREFIX}stem_relu"
    return f"{PREFIX}{stage}_{BLOCKS_PER_STAGE - 1}_relu"


def scaled(channels: int, width: float) -> int:
    """A channel count times ``width`` (at least 1)."""
    return max(1, round(channels * width))


def encoder_features(x, width: float = 1.0):
    """Outputs of the stem and of layer1..layer4 for a ``[B, D, H, W, C]`` input tensor.

    ``width`` scales every channel count (1: R3D-18; less: the same topology, narrower).
    """
    x = torch_conv3d(x, scaled(STEM_CHANNELS, width), STEM_KERNEL, STEM_STRIDES, STEM_CONV,
                     ENCODER_INITIALIZER)
    x = batch_norm(f"{PREFIX}stem_bn")(x)
    x = tf.keras.layers.ReLU(name=stage_output_name("stem"))(x)
    features = [x]
    for stage, (channels, strides) in enumerate(zip(STAGE_CHANNELS, STAGE_STRIDES), start=1):
        for block in range(BLOCKS_PER_STAGE):
            x = basic_block(x, scaled(channels, width), strides if block == 0 else 1,
                            f"{PREFIX}layer{stage}_{block}")
        features.append(x)
    return features


def basic_block(x, channels, strides, name):
    """torchvision's BasicBlock: conv-BN-ReLU, conv-BN, plus the (downsampled) input, ReLU."""
    y = torch_conv3d(x, channels, 3, strides, f"{name}_conv1", ENCODER_INITIALIZER)
    y = batch_norm(f"{name}_bn1")(y)
    y = tf.keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = torch_conv3d(y, channels, 3, 1, f"{name}_conv2", ENCODER_INITIALIZER)
    y = batch_norm(f"{name}_bn2")(y)
    shortcut = x
    if strides != 1 or x.shape[-1] != channels:
        shortcut = torch_conv3d(x, channels, 1, strides, f"{name}_downsample_conv", ENCODER_INITIALIZER)
        shortcut = batch_norm(f"{name}_downsample_bn")(shortcut)
    y = tf.keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return tf.keras.layers.ReLU(name=f"{name}_relu")(y)


def r3d18(input_shape=(None, None, None, 3), weights=None, name="r3d18") -> tf.keras.Model:
    """The R3D-18 encoder; outputs ``[stem, layer1, layer2, layer3, layer4]``.

    ``weights``: a Keras weights file made by ``tfcovseg convert-weights --torchvision``.
    """
    inputs = tf.keras.Input(shape=tuple(input_shape), name="video")
    model = tf.keras.Model(inputs, encoder_features(inputs), name=name)
    if weights is not None:
        load_weights_file(model, weights)
    return model


def load_weights_file(model, path) -> None:
    """``model.load_weights(path)`` with our error for a missing or unfitting file."""
    if not tf.io.gfile.exists(str(path)):
        raise TfcovsegError("weights file not found", path)
    try:
        model.load_weights(str(path))
    except (OSError, ValueError) as err:
        raise TfcovsegError(f"weights do not fit {model.name} ({err})", path) from None


def transfer_encoder(source: tf.keras.Model, target: tf.keras.Model) -> None:
    """Copy the encoder weights of ``source`` into the same-named layers of ``target``.

    A 1-channel stem in ``target`` gets the sum of the 3 RGB kernels: on a grey volume repeated
    to 3 channels both give the same output (the later faimed3d's ``summed`` input).
    """
    for layer in source.layers:
        if not layer.name.startswith(PREFIX) or not layer.weights:
            continue
        values = layer.get_weights()
        target_layer = target.get_layer(layer.name)
        if layer.name == STEM_CONV and target_layer.kernel.shape[-2] == 1:
            values = [np.sum(values[0], axis=-2, keepdims=True)]
        target_layer.set_weights(values)
