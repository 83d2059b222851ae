"""The paper's 100 networks: ``smp.Unet/Linknet/FPN/PSPNet(encoder, in_channels=1, classes=1,
activation="sigmoid")`` of segmentation_models_pytorch, in Keras.

``paper_network("fpn", "resnet18")`` is the network Bizopoulos et al. trained (every other
argument at smp's defaults = the paper's Table 1: encoder depth 5, PSPNet depth 3; decoders in
``decoders``; encoders in ``encoders``, smp's layout): grey ``[B, H, W, 1]`` in, float32 sigmoid
``[B, H, W, 1]`` out. Its layers carry smp's state_dict module paths (dots as underscores), so
``convert.load_smp_state_dict`` loads the authors' checkpoints.

As in smp, the whole encoder is part of the network even where the forward pass stops early
(``Encoder.features``): PSPNet's stages at strides 16 and 32 lie on no path to the output but
are held in the model, so the parameters and the state_dict keys are smp's. Their outputs reach
nothing, but they may still run (eager calls; training, where their BatchNorm statistics update
as smp's never do), and get no gradients.
ImageNet initialisation is ``Encoder.load_weights``: smp's RGB weights, the first convolution's
kernel summed over the three input channels.
"""

from collections.abc import Callable
from dataclasses import dataclass

import tensorflow as tf

from tfcovseg.errors import ConfigError
from tfcovseg.models.grid2d import decoders
from tfcovseg.models.grid2d.encoders import ENCODERS, imagenet
from tfcovseg.settings.grid2d import Encoders

ENCODER_WEIGHTS = (None, "imagenet")
VGG = "vgg"  # smp's Unet adds its centre block when the encoder name starts with "vgg"


@dataclass(frozen=True)
class Architecture:
    depth: int  # smp's encoder_depth: the stages the forward pass runs (stride 2 ** depth)
    build: Callable  # (smp's encoder features, encoder name) -> probabilities


def _unet(features, encoder: str):
    x = decoders.unet_decoder(features, center=encoder.startswith(VGG))
    return decoders.segmentation_head(x, kernel=3)


def _linknet(features, encoder: str):
    return decoders.segmentation_head(decoders.linknet_decoder(features), kernel=1)


def _fpn(features, encoder: str):
    return decoders.segmentation_head(decoders.fpn_decoder(features), kernel=1, upsampling=4)


def _pspnet(features, encoder: str):
    return decoders.segmentation_head(decoders.psp_decoder(features), kernel=3, upsampling=8)


ARCHITECTURES = {
    "unet": Architecture(5, _unet),
    "linknet": Architecture(5, _linknet),
    "fpn": Architecture(5, _fpn),
    "pspnet": Architecture(3, _pspnet),
}


def paper_network(arch: str, encoder: str, input_shape=(None, None, 1),
                  encoder_weights: str | None = None,
                  encoder_settings: Encoders | None = None) -> tf.keras.Model:
    """smp's ``arch`` on ``encoder`` (smp's name: ``resnext50_32x4d``, ``efficientnet-b0``).

    ``encoder_weights``: None (random) or "imagenet" (the converted file the encoder reads;
    ``MissingImagenetWeights`` when it is not there). ``encoder_settings``: the library
    versions whose encoders differ (EfficientNet padding, Xception's forward pass; default: the
    authors' versions). Raises ``ConfigError`` for an unknown architecture or encoder and for an
    input size the architecture cannot take, before building.
    """
    _check_arguments(arch, encoder, input_shape, encoder_weights)
    spec = ARCHITECTURES[arch]
    inputs = tf.keras.Input(tuple(input_shape), name="input")
    settings = encoder_settings or Encoders()
    features = ENCODERS[encoder].features(inputs, settings, depth=spec.depth).features
    network = tf.keras.Model(inputs, spec.build(features, encoder), name=f"{arch}_{encoder}")
    if encoder_weights == "imagenet":
        ENCODERS[encoder].load_weights(network, imagenet.weights_file(encoder, encoder_weights))
    return network


def check_input_size(arch: str, height, width) -> None:
    """``ConfigError`` unless H and W (None: decided at run time) divide by 2 ** depth."""
    depth = ARCHITECTURES[arch].depth
    stride = 2**depth
    if any(size is not None and size % stride for size in (height, width)):
        raise ConfigError(
            f"{arch} takes H and W divisible by {stride} (encoder depth {depth}, as "
            f"segmentation_models_pytorch); got {height}x{width}")


def _check_arguments(arch, encoder, input_shape, encoder_weights) -> None:
    if arch not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {arch!r}; allowed: {', '.join(ARCHITECTURES)}")
    if encoder not in ENCODERS:
        raise ConfigError(f"unknown encoder {encoder!r}; available: {', '.join(sorted(ENCODERS))}")
    if encoder_weights not in ENCODER_WEIGHTS:
        raise ConfigError(f"encoder_weights is {encoder_weights!r}; allowed: None, 'imagenet'")
    height, width, _ = input_shape
    check_input_size(arch, height, width)
