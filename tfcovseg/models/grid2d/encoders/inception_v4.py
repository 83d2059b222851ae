"""Inception-v4 (Szegedy et al. 2017) as segmentation_models_pytorch's encoder.

Module paths of Cadene's ``pretrainedmodels`` InceptionV4 (``encoder.features.<i>.branch1.0.conv``).
smp changes every 3x3 convolution to padding 1 and every max pooling to padding 1, so each
stride-2 step halves the size exactly (the ImageNet model's "valid" steps would not); the same is
done here. smp's features are the outputs of ``features[2]`` (stride 2), ``[4]`` (4), ``[8]``
(8), ``[14]`` (16) and ``[21]`` (32), its ``_out_indexes``.
"""

from tfcovseg.models.grid2d.encoders.encoder import ROOT, Encoder
from tfcovseg.models.grid2d.encoders.imagenet import INCEPTION_MEAN_STD
from tfcovseg.models.grid2d.encoders.layers import (
    batch_norm,
    concat,
    conv2d,
    layer_name,
    layers,
    max_pool,
    relu,
)

INCEPTION_BN_EPS = 1e-3  # "value found in tensorflow" (pretrainedmodels)
SMP_PADDING = 1  # smp's padding of every 3x3 convolution and max pooling
STEM = ((32, 2), (32, 1), (64, 1))  # features[0..2]: 3x3 BasicConv2d (filters, stride)
INCEPTION_A_BLOCKS = range(6, 10)
INCEPTION_B_BLOCKS = range(11, 18)
INCEPTION_C_BLOCKS = range(19, 22)
REDUCTION_A, REDUCTION_B = 10, 18
OUT_INDEXES = (2, 4, 8, 14, 21)  # smp's _out_indexes: strides 2 .. 32 (21: the last block)
FEATURES = f"{ROOT}.features"


def basic_conv(x, filters, kernel, path, stride=1):
    """BasicConv2d: conv (no bias) -> BN -> ReLU; "same"-sized except by the stride."""
    kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
    padding = tuple(k // 2 for k in kernel)
    x = conv2d(x, filters, kernel, f"{path}.conv", stride=stride, padding=padding)
    return relu(batch_norm(x, f"{path}.bn", eps=INCEPTION_BN_EPS), f"{path}.relu")


def conv_chain(x, specs, path):
    """An nn.Sequential of BasicConv2d: ``specs`` = ((filters, kernel[, stride]), ...)."""
    for index, spec in enumerate(specs):
        x = basic_conv(x, *spec[:2], f"{path}.{index}", *spec[2:])
    return x


def pooled_conv(x, filters, path):
    """AvgPool2d(3, 1, padding 1, count_include_pad=False) -> 1x1 BasicConv2d.

    Keras' "same" average pooling also leaves the padded cells out of the count.
    """
    x = layers.AveragePooling2D(3, 1, padding="same", name=layer_name(f"{path}.0"))(x)
    return basic_conv(x, filters, 1, f"{path}.1")


def mixed_3a(x, path):
    return concat([max_pool(x, 3, 2, f"{path}.maxpool", padding=SMP_PADDING),
                   basic_conv(x, 96, 3, f"{path}.conv", stride=2)], f"{path}.cat")


def mixed_4a(x, path):
    return concat([
        conv_chain(x, ((64, 1), (96, 3)), f"{path}.branch0"),
        conv_chain(x, ((64, 1), (64, (1, 7)), (64, (7, 1)), (96, 3)), f"{path}.branch1"),
    ], f"{path}.cat")


def mixed_5a(x, path):
    return concat([basic_conv(x, 192, 3, f"{path}.conv", stride=2),
                   max_pool(x, 3, 2, f"{path}.maxpool", padding=SMP_PADDING)], f"{path}.cat")


def inception_a(x, path):
    return concat([
        basic_conv(x, 96, 1, f"{path}.branch0"),
        conv_chain(x, ((64, 1), (96, 3)), f"{path}.branch1"),
        conv_chain(x, ((64, 1), (96, 3), (96, 3)), f"{path}.branch2"),
        pooled_conv(x, 96, f"{path}.branch3"),
    ], f"{path}.cat")


def reduction_a(x, path):
    return concat([
        basic_conv(x, 384, 3, f"{path}.branch0", stride=2),
        conv_chain(x, ((192, 1), (224, 3), (256, 3, 2)), f"{path}.branch1"),
        max_pool(x, 3, 2, f"{path}.branch2", padding=SMP_PADDING),
    ], f"{path}.cat")


def inception_b(x, path):
    return concat([
        basic_conv(x, 384, 1, f"{path}.branch0"),
        conv_chain(x, ((192, 1), (224, (1, 7)), (256, (7, 1))), f"{path}.branch1"),
        conv_chain(x, ((192, 1), (192, (7, 1)), (224, (1, 7)), (224, (7, 1)), (256, (1, 7))),
                   f"{path}.branch2"),
        pooled_conv(x, 128, f"{path}.branch3"),
    ], f"{path}.cat")


def reduction_b(x, path):
    return concat([
        conv_chain(x, ((192, 1), (192, 3, 2)), f"{path}.branch0"),
        conv_chain(x, ((256, 1), (256, (1, 7)), (320, (7, 1)), (320, 3, 2)), f"{path}.branch1"),
        max_pool(x, 3, 2, f"{path}.branch2", padding=SMP_PADDING),
    ], f"{path}.cat")


def inception_c(x, path):
    def fork(y, branch):  # a 1x3 and a 3x1 convolution side by side
        return [basic_conv(y, 256, (1, 3), f"{path}.{branch}a"),
                basic_conv(y, 256, (3, 1), f"{path}.{branch}b")]

    branch1 = basic_conv(x, 384, 1, f"{path}.branch1_0")
    branch2 = basic_conv(x, 384, 1, f"{path}.branch2_0")
    branch2 = basic_conv(branch2, 448, (3, 1), f"{path}.branch2_1")
    branch2 = basic_conv(branch2, 512, (1, 3), f"{path}.branch2_2")
    return concat([basic_conv(x, 256, 1, f"{path}.branch0"),
                   *fork(branch1, "branch1_1"), *fork(branch2, "branch2_3"),
                   pooled_conv(x, 256, f"{path}.branch3")], f"{path}.cat")


BLOCKS = {3: mixed_3a, 4: mixed_4a, 5: mixed_5a, REDUCTION_A: reduction_a, REDUCTION_B: reduction_b,
          **dict.fromkeys(INCEPTION_A_BLOCKS, inception_a),
          **dict.fromkeys(INCEPTION_B_BLOCKS, inception_b),
          **dict.fromkeys(INCEPTION_C_BLOCKS, inception_c)}


def block_output(index: int) -> str:
    return layer_name(f"{FEATURES}.{index}.{'relu' if index < len(STEM) else 'cat'}")


def inception_v4_graph(x, _settings):
    for index, (filters, stride) in enumerate(STEM):
        x = basic_conv(x, filters, 3, f"{FEATURES}.{index}", stride=stride)
    for index in sorted(BLOCKS):
        x = BLOCKS[index](x, f"{FEATURES}.{index}")
    return x


ENCODERS = {
    "inceptionv4": Encoder("inceptionv4", inception_v4_graph,
                           taps=(None, *map(block_output, OUT_INDEXES)), mean_std=INCEPTION_MEAN_STD),
}
