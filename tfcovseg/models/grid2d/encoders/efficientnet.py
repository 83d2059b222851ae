"""EfficientNet-B0 to B6 (Tan & Le 2019) as segmentation_models_pytorch's ``efficientnet-bN``
encoder: lukemelas' efficientnet_pytorch (smp 0.6.0 vendors its 0.7.1), not segmentation_models
1.0.1's Keras EfficientNet, which taps the expansion activations and the 1280-channel head.

Stem ``_conv_stem`` 3x3/2 + ``_bn0`` + swish, then ``_blocks.<i>`` MBConv blocks: 1x1
``_expand_conv``/``_bn0`` (absent at expand ratio 1), depthwise ``_depthwise_conv``/``_bn1``,
squeeze-excitation (``_se_reduce``, ``_se_expand``, with biases), 1x1 ``_project_conv``/``_bn2``,
and an identity shortcut where stride 1 keeps the width, with drop-connect (stochastic depth,
training only) at rate 0.2 * block index / blocks. BatchNorm momentum 0.01 (Keras 0.99), eps 1e-3.
smp's features: the stem (stride 2) and the blocks of its ``out_indexes`` (strides 4 to 32).
smp builds the head ``_conv_head``/``_bn1`` without running it; it is here too (``FeatureTap``),
so state_dicts convert key for key and parameter counts agree.

Padding follows ``settings.grid2d.Encoders.efficientnet_padding``: the static "same" padding of
each efficientnet_pytorch version, computed from the model's native image size (see there).
"""

import math
from typing import NamedTuple

from tfcovseg.models.grid2d.encoders.encoder import ROOT, Encoder
from tfcovseg.models.grid2d.encoders.imagenet import TORCHVISION_MEAN_STD
from tfcovseg.models.grid2d.encoders.layers import (
    add,
    batch_norm,
    conv2d,
    depthwise_conv2d,
    feature_tap,
    layer_name,
    layers,
)

# efficientnet_pytorch utils.efficientnet_params: width and depth coefficients, native image size
COEFFICIENTS = {
    "efficientnet-b0": (1.0, 1.0, 224),
    "efficientnet-b1": (1.0, 1.1, 240),
    "efficientnet-b2": (1.1, 1.2, 260),
    "efficientnet-b3": (1.2, 1.4, 300),
    "efficientnet-b4": (1.4, 1.8, 380),
    "efficientnet-b5": (1.6, 2.2, 456),
    "efficientnet-b6": (1.8, 2.6, 528),
}
# efficientnet_pytorch's blocks_args of B0: repeats, kernel, stride, expand ratio, in, out
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
SE_RATIO = 0.25
STEM_WIDTH, HEAD_WIDTH = 32, 1280
DEPTH_DIVISOR = 8
DROP_CONNECT_RATE = 0.2  # global_params.drop_connect_rate
BN = dict(momentum=0.99, eps=1e-3)  # batch_norm_momentum 0.99 = PyTorch momentum 0.01
# smp 0.6.0 encoders/efficientnet.py "out_indexes": the blocks whose outputs are the stride 4, 8
# and 16 features (the stride-32 one is the last block's). B0's is the first block of stage 5.
OUT_INDEXES = {
    "efficientnet-b0": (2, 4, 8), "efficientnet-b1": (4, 7, 15), "efficientnet-b2": (4, 7, 15),
    "efficientnet-b3": (4, 7, 17), "efficientnet-b4": (5, 9, 21), "efficientnet-b5": (7, 12, 26),
    "efficientnet-b6": (8, 14, 30),
}


class MBConv(NamedTuple):
    kernel: int
    stride: int
    expand_ratio: int
    in_channels: int
    out_channels: int

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels


def round_filters(filters: int, width: float) -> int:
    """efficientnet_pytorch's ``round_filters``: scaled, rounded to a multiple of 8, >= 90%."""
    filters *= width
    rounded = max(DEPTH_DIVISOR, int(filters + DEPTH_DIVISOR / 2) // DEPTH_DIVISOR * DEPTH_DIVISOR)
    return int(rounded + DEPTH_DIVISOR if rounded < 0.9 * filters else rounded)


def mbconv_blocks(width: float, depth: float) -> list[MBConv]:
    """Every block of the scaled network; a stage's later repeats keep its width, at stride 1."""
    blocks = []
    for repeats, kernel, stride, expand_ratio, in_channels, out_channels in STAGES:
        in_channels = round_filters(in_channels, width)
        out_channels = round_filters(out_channels, width)
        for repeat in range(int(math.ceil(depth * repeats))):
            blocks.append(MBConv(kernel, stride if repeat == 0 else 1, expand_ratio,
                                 in_channels if repeat == 0 else out_channels, out_channels))
    return blocks


def static_same_padding(kernel, stride, size, regime) -> tuple[int, int]:
    """efficientnet_pytorch's Conv2dStaticSamePadding for a layer seeing ``size`` pixels at the
    native image size: TensorFlow's "SAME" total, split floor/ceil (0.6.3, 0.7.1) or
    ceil/ceil (0.7.0, ``symmetric``)."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    if regime == "symmetric":
        return (total - total // 2,) * 2
    return total // 2, total - total // 2


def swish(x, path):
    return layers.Activation("swish", name=layer_name(f"{path}.swish"))(x)


def squeeze_excitation(x, squeezed, path):
    s = layers.GlobalAveragePooling2D(keepdims=True, name=layer_name(f"{path}.squeeze"))(x)
    s = swish(conv2d(s, squeezed, 1, f"{path}._se_reduce", use_bias=True), f"{path}._se_reduce")
    s = conv2d(s, x.shape[-1], 1, f"{path}._se_expand", use_bias=True)
    s = layers.Activation("sigmoid", name=layer_name(f"{path}._se_expand.sigmoid"))(s)
    return layers.Multiply(name=layer_name(f"{path}.excite"))([s, x])


def mbconv(x, block: MBConv, path, padding, drop_rate):
    """MBConvBlock; ``padding`` of its depthwise convolution, ((top, bottom), (left, right))."""
    y = x
    if block.expand_ratio != 1:
        y = conv2d(y, block.in_channels * block.expand_ratio, 1, f"{path}._expand_conv")
        y = swish(batch_norm(y, f"{path}._bn0", **BN), f"{path}._bn0")
    y = depthwise_conv2d(y, block.kernel, f"{path}._depthwise_conv", stride=block.stride,
                         padding=padding)
    y = swish(batch_norm(y, f"{path}._bn1", **BN), f"{path}._bn1")
    y = squeeze_excitation(y, max(1, int(block.in_channels * SE_RATIO)), path)
    y = batch_norm(conv2d(y, block.out_channels, 1, f"{path}._project_conv"), f"{path}._bn2", **BN)
    if not block.residual:
        return y
    if drop_rate > 0:  # efficientnet_pytorch's drop_connect: a whole sample, scaled by 1 / keep
        y = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1),
                           name=layer_name(f"{path}.drop_connect"))(y)
    return add([y, x], f"{path}.add")


def efficientnet_graph(name: str):
    width, depth, image_size = COEFFICIENTS[name]
    blocks = mbconv_blocks(width, depth)

    def graph(x, settings):
        regime = settings.efficientnet_padding

        def padding(kernel, stride, size):  # 0.6.3 pads every layer as if it saw the image
            size = image_size if regime == "tf_same" else size
            return (static_same_padding(kernel, stride, size, regime),) * 2

        x = conv2d(x, round_filters(STEM_WIDTH, width), 3, f"{ROOT}._conv_stem", stride=2,
                   padding=padding(3, 2, image_size))
        x = swish(batch_norm(x, f"{ROOT}._bn0", **BN), f"{ROOT}._bn0")
        size = math.ceil(image_size / 2)
        for index, block in enumerate(blocks):
            x = mbconv(x, block, f"{ROOT}._blocks.{index}", padding(block.kernel, block.stride, size),
                       drop_rate=DROP_CONNECT_RATE * index / len(blocks))
            size = math.ceil(size / block.stride)
        head = conv2d(x, round_filters(HEAD_WIDTH, width), 1, f"{ROOT}._conv_head")
        head = swish(batch_norm(head, f"{ROOT}._bn1", **BN), f"{ROOT}._bn1")
        return feature_tap(x, head, f"{ROOT}._conv_head.tap")

    return graph


def efficientnet_taps(name: str) -> tuple[str | None, ...]:
    blocks = mbconv_blocks(*COEFFICIENTS[name][:2])
    outputs = [f"{ROOT}._blocks.{i}.{'add' if blocks[i].residual else '_bn2'}"
               for i in OUT_INDEXES[name]]
    return (None, layer_name(f"{ROOT}._bn0.swish"), *map(layer_name, outputs),
            layer_name(f"{ROOT}._conv_head.tap"))


ENCODERS = {
    name: Encoder(name, efficientnet_graph(name), taps=efficientnet_taps(name),
                  mean_std=TORCHVISION_MEAN_STD)
    for name in COEFFICIENTS
}
