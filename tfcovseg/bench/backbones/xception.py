"""Xception (Chollet 2017) as segmentation_models_pytorch's encoder (Cadene's ``pretrainedmodels``
port; segmentation_models 1.0.1 removed Keras' own Xception from its backbones).

smp sets the two stem convolutions to padding 1 so that every step halves the size exactly; so
does this. A separable convolution is PyTorch's depthwise ``conv1`` then 1x1 ``pointwise``, kept
as two Keras layers under those names. Decoder features, as smp returns them: ``relu2``
(stride 2), the outputs of ``block1`` (4), ``block2`` (8) and ``block11`` (16); the output is
``bn4`` without a ReLU (stride 32).
"""

from tfcovseg.bench.backbones.encoder import Encoder
from tfcovseg.bench.backbones.imagenet import INCEPTION_MEAN_STD
from tfcovseg.bench.backbones.layers import (
    batch_norm,
    conv2d,
    depthwise_conv2d,
    layers,
    max_pool,
    relu,
)

SMP_STEM_PADDING = 1
MIDDLE_FLOW = range(4, 12)  # block4 .. block11: 728 channels, 3 separable convolutions
MIDDLE_WIDTH, MIDDLE_REPS = 728, 3
# block: (in, out, separable convolutions, stride, start_with_relu, grow_first)
ENTRY_AND_EXIT = {
    1: (64, 128, 2, 2, False, True),
    2: (128, 256, 2, 2, True, True),
    3: (256, MIDDLE_WIDTH, 2, 2, True, True),
    12: (MIDDLE_WIDTH, 1024, 2, 2, True, False),
}
BLOCKS = {**ENTRY_AND_EXIT,
          **dict.fromkeys(MIDDLE_FLOW, (MIDDLE_WIDTH, MIDDLE_WIDTH, MIDDLE_REPS, 1, True, True))}


def separable_conv(x, filters, name):
    """SeparableConv2d(c, filters, 3, padding=1, bias=False)."""
    x = depthwise_conv2d(x, 3, f"{name}/conv1")
    return conv2d(x, filters, 1, f"{name}/pointwise")


def block(x, name, in_filters, out_filters, reps, stride, start_with_relu, grow_first):
    """Cadene's Block: ``rep`` (ReLU, SeparableConv2d, BN)*reps [+ max pool] plus a shortcut."""
    widths = [out_filters] * reps if grow_first else [in_filters] * (reps - 1) + [out_filters]
    y, index = x, 0
    for unit, width in enumerate(widths):
        if unit or start_with_relu:
            y = relu(y, f"{name}/rep/{index}")
            index += 1
        y = separable_conv(y, width, f"{name}/rep/{index}")
        y = batch_norm(y, f"{name}/rep/{index + 1}")
        index += 2
    if stride != 1:
        y = max_pool(y, 3, stride, f"{name}/rep/{index}", padding=1)
    if out_filters != in_filters or stride != 1:
        x = conv2d(x, out_filters, 1, f"{name}/skip", stride=stride)
        x = batch_norm(x, f"{name}/skipbn")
    return layers.Add(name=f"{name}/add")([y, x])


def xception_graph(x):
    x = conv2d(x, 32, 3, "conv1", stride=2, padding=SMP_STEM_PADDING)
    x = relu(batch_norm(x, "bn1"), "relu1")
    x = conv2d(x, 64, 3, "conv2", padding=SMP_STEM_PADDING)
    x = relu(batch_norm(x, "bn2"), "relu2")
    for index in sorted(BLOCKS):
        x = block(x, f"block{index}", *BLOCKS[index])
    x = relu(batch_norm(separable_conv(x, 1536, "conv3"), "bn3"), "relu3")
    return batch_norm(separable_conv(x, 2048, "conv4"), "bn4")


ENCODERS = {
    "xception": Encoder("xception", xception_graph,
                        feature_layers=("block11/add", "block2/add", "block1/add", "relu2"),
                        mean_std=INCEPTION_MEAN_STD),
}
