"""Inception-v4 (Szegedy et al. 2017) as segmentation_models_pytorch's encoder.

Module paths of Cadene's ``pretrainedmodels`` InceptionV4 (``features/<i>/branch1/0/conv``).
smp changes every 3x3 convolution to padding 1 and every max pooling to padding 1, so each
stride-2 step halves the size exactly (the ImageNet model's "valid" steps would not); the same is
done here. Decoder features are the outputs of ``features[2]`` (stride 2), ``[4]`` (4), ``[8]``
(8) and ``[14]`` (16); the output is ``features[21]`` (stride 32), smp's ``_out_indexes``.
"""

from tfcovseg.bench.backbones.encoder import Encoder
from tfcovseg.bench.backbones.imagenet import INCEPTION_MEAN_STD
from tfcovseg.bench.backbones.layers import batch_norm, concat, conv2d, layers, max_pool, relu

INCEPTION_BN_EPS = 1e-3  # "value found in tensorflow" (pretrainedmodels)
SMP_PADDING = 1  # smp's padding of every 3x3 convolution and max pooling
STEM = ((32, 2), (32, 1), (64, 1))  # features[0..2]: 3x3 BasicConv2d (filters, stride)
INCEPTION_A_BLOCKS = range(6, 10)
INCEPTION_B_BLOCKS = range(11, 18)
INCEPTION_C_BLOCKS = range(19, 22)
REDUCTION_A, REDUCTION_B = 10, 18
FEATURE_BLOCKS = (14, 8, 4, 2)  # strides 16, 8, 4, 2


def basic_conv(x, filters, kernel, name, stride=1):
    """BasicConv2d: conv (no bias) -> BN -> ReLU; "same"-sized except by the stride."""
    kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
    padding = tuple(k // 2 for k in kernel)
    x = conv2d(x, filters, kernel, f"{name}/conv", stride=stride, padding=padding)
    return relu(batch_norm(x, f"{name}/bn", eps=INCEPTION_BN_EPS), f"{name}/relu")


def conv_chain(x, specs, name):
    """An nn.Sequential of BasicConv2d: ``specs`` = ((filters, kernel[, stride]), ...)."""
    for index, spec in enumerate(specs):
        x = basic_conv(x, *spec[:2], f"{name}/{index}", *spec[2:])
    return x


def pooled_conv(x, filters, name):
    """AvgPool2d(3, 1, padding 1, count_include_pad=False) -> 1x1 BasicConv2d.

    Keras' "same" average pooling also leaves the padded cells out of the count.
    """
    x = layers.AveragePooling2D(3, 1, padding="same", name=f"{name}/0")(x)
    return basic_conv(x, filters, 1, f"{name}/1")


def mixed_3a(x, name):
    return concat([max_pool(x, 3, 2, f"{name}/maxpool", padding=SMP_PADDING),
                   basic_conv(x, 96, 3, f"{name}/conv", stride=2)], f"{name}/cat")


def mixed_4a(x, name):
    return concat([
        conv_chain(x, ((64, 1), (96, 3)), f"{name}/branch0"),
        conv_chain(x, ((64, 1), (64, (1, 7)), (64, (7, 1)), (96, 3)), f"{name}/branch1"),
    ], f"{name}/cat")


def mixed_5a(x, name):
    return concat([basic_conv(x, 192, 3, f"{name}/conv", stride=2),
                   max_pool(x, 3, 2, f"{name}/maxpool", padding=SMP_PADDING)], f"{name}/cat")


def inception_a(x, name):
    return concat([
        basic_conv(x, 96, 1, f"{name}/branch0"),
        conv_chain(x, ((64, 1), (96, 3)), f"{name}/branch1"),
        conv_chain(x, ((64, 1), (96, 3), (96, 3)), f"{name}/branch2"),
        pooled_conv(x, 96, f"{name}/branch3"),
    ], f"{name}/cat")


def reduction_a(x, name):
    return concat([
        basic_conv(x, 384, 3, f"{name}/branch0", stride=2),
        conv_chain(x, ((192, 1), (224, 3), (256, 3, 2)), f"{name}/branch1"),
        max_pool(x, 3, 2, f"{name}/branch2", padding=SMP_PADDING),
    ], f"{name}/cat")


def inception_b(x, name):
    return concat([
        basic_conv(x, 384, 1, f"{name}/branch0"),
        conv_chain(x, ((192, 1), (224, (1, 7)), (256, (7, 1))), f"{name}/branch1"),
        conv_chain(x, ((192, 1), (192, (7, 1)), (224, (1, 7)), (224, (7, 1)), (256, (1, 7))),
                   f"{name}/branch2"),
        pooled_conv(x, 128, f"{name}/branch3"),
    ], f"{name}/cat")


def reduction_b(x, name):
    return concat([
        conv_chain(x, ((192, 1), (192, 3, 2)), f"{name}/branch0"),
        conv_chain(x, ((256, 1), (256, (1, 7)), (320, (7, 1)), (320, 3, 2)), f"{name}/branch1"),
        max_pool(x, 3, 2, f"{name}/branch2", padding=SMP_PADDING),
    ], f"{name}/cat")


def inception_c(x, name):
    def fork(y, branch):  # a 1x3 and a 3x1 convolution side by side
        return [basic_conv(y, 256, (1, 3), f"{name}/{branch}a"),
                basic_conv(y, 256, (3, 1), f"{name}/{branch}b")]

    branch1 = basic_conv(x, 384, 1, f"{name}/branch1_0")
    branch2 = basic_conv(x, 384, 1, f"{name}/branch2_0")
    branch2 = basic_conv(branch2, 448, (3, 1), f"{name}/branch2_1")
    branch2 = basic_conv(branch2, 512, (1, 3), f"{name}/branch2_2")
    return concat([basic_conv(x, 256, 1, f"{name}/branch0"),
                   *fork(branch1, "branch1_1"), *fork(branch2, "branch2_3"),
                   pooled_conv(x, 256, f"{name}/branch3")], f"{name}/cat")


BLOCKS = {3: mixed_3a, 4: mixed_4a, 5: mixed_5a, REDUCTION_A: reduction_a, REDUCTION_B: reduction_b,
          **dict.fromkeys(INCEPTION_A_BLOCKS, inception_a),
          **dict.fromkeys(INCEPTION_B_BLOCKS, inception_b),
          **dict.fromkeys(INCEPTION_C_BLOCKS, inception_c)}


def block_output(index: int) -> str:
    return f"features/{index}/relu" if index < len(STEM) else f"features/{index}/cat"


def inception_v4_graph(x):
    for index, (filters, stride) in enumerate(STEM):
        x = basic_conv(x, filters, 3, f"features/{index}", stride=stride)
    for index in sorted(BLOCKS):
        x = BLOCKS[index](x, f"features/{index}")
    return x


ENCODERS = {
    "inceptionv4": Encoder("inceptionv4", inception_v4_graph,
                           feature_layers=tuple(block_output(i) for i in FEATURE_BLOCKS),
                           mean_std=INCEPTION_MEAN_STD),
}
