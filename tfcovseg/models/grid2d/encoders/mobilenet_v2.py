"""MobileNetV2 (Sandler et al. 2018) as segmentation_models_pytorch's ``mobilenet_v2`` encoder:
torchvision's ``features`` (width 1.0), not segmentation_models 1.0.1's Keras MobileNetV2, which
taps the expansion activations.

``features.0`` and ``features.18`` are Conv2dNormActivation (``.0`` conv, ``.1`` BN, ``.2`` ReLU6);
``features.1``..``17`` inverted residuals whose ``conv`` Sequential holds the 1x1 expansion
(absent at expand ratio 1), the 3x3 depthwise (stride 1 or 2, padding 1) and the linear 1x1
projection with its BN. smp's features are the outputs of ``features[1, 3, 6, 13, 18]``.
"""

from typing import NamedTuple

from tfcovseg.models.grid2d.encoders.encoder import ROOT, Encoder
from tfcovseg.models.grid2d.encoders.imagenet import TORCHVISION_MEAN_STD
from tfcovseg.models.grid2d.encoders.layers import (
    add,
    batch_norm,
    conv2d,
    depthwise_conv2d,
    layer_name,
    relu,
)

# torchvision.models.mobilenetv2 inverted_residual_setting: expand ratio t, channels c, repeats n,
# stride s of the first repeat
SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
           (6, 160, 3, 2), (6, 320, 1, 1))
STEM_WIDTH, LAST_WIDTH = 32, 1280
RELU6 = 6.0
OUT_INDEXES = (1, 3, 6, 13, 18)  # smp's MobileNetV2Encoder._out_indexes (18: the last module)
FEATURES = f"{ROOT}.features"


class InvertedResidual(NamedTuple):
    index: int  # in torchvision's ``features``
    expand_ratio: int
    in_channels: int
    out_channels: int
    stride: int

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels

    @property
    def output(self) -> str:
        """The module path of the block's output: the addition, or the projection's BN."""
        path = f"{FEATURES}.{self.index}"
        return f"{path}.add" if self.residual else f"{path}.conv.{3 if self.expand_ratio != 1 else 2}"


def inverted_residuals() -> list[InvertedResidual]:
    blocks, channels = [], STEM_WIDTH
    for expand_ratio, out_channels, repeats, stride in SETTING:
        for repeat in range(repeats):
            blocks.append(InvertedResidual(len(blocks) + 1, expand_ratio, channels, out_channels,
                                           stride if repeat == 0 else 1))
            channels = out_channels
    return blocks


def conv_bn_relu6(x, filters, kernel, path, stride=1, depthwise=False):
    """torchvision's Conv2dNormActivation(..., activation_layer=ReLU6): ``.0``, ``.1``, ``.2``."""
    if depthwise:
        x = depthwise_conv2d(x, kernel, f"{path}.0", stride=stride)
    else:
        x = conv2d(x, filters, kernel, f"{path}.0", stride=stride, padding=kernel // 2)
    return relu(batch_norm(x, f"{path}.1"), f"{path}.2", max_value=RELU6)


def inverted_residual(x, block: InvertedResidual):
    path = f"{FEATURES}.{block.index}.conv"
    hidden = block.in_channels * block.expand_ratio
    y, index = x, 0
    if block.expand_ratio != 1:
        y, index = conv_bn_relu6(y, hidden, 1, f"{path}.0"), 1
    y = conv_bn_relu6(y, hidden, 3, f"{path}.{index}", stride=block.stride, depthwise=True)
    y = batch_norm(conv2d(y, block.out_channels, 1, f"{path}.{index + 1}"), f"{path}.{index + 2}")
    return add([x, y], block.output) if block.residual else y


def mobilenet_v2_graph(x, _settings):
    x = conv_bn_relu6(x, STEM_WIDTH, 3, f"{FEATURES}.0", stride=2)
    blocks = inverted_residuals()
    for block in blocks:
        x = inverted_residual(x, block)
    return conv_bn_relu6(x, LAST_WIDTH, 1, f"{FEATURES}.{len(blocks) + 1}")


def mobilenet_v2_taps() -> tuple[str | None, ...]:
    outputs = {block.index: block.output for block in inverted_residuals()}
    paths = [outputs[index] for index in OUT_INDEXES[:-1]] + [f"{FEATURES}.{OUT_INDEXES[-1]}.2"]
    return (None, *map(layer_name, paths))


ENCODERS = {
    "mobilenet_v2": Encoder("mobilenet_v2", mobilenet_v2_graph, taps=mobilenet_v2_taps(),
                            mean_std=TORCHVISION_MEAN_STD),
}
