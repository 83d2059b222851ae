"""Xception (Chollet 2017) as segmentation_models_pytorch's encoder (Cadene's ``pretrainedmodels``
port; segmentation_models 1.0.1 removed Keras' own Xception from its backbones).

smp sets the two stem convolutions to padding 1 so that every step halves the size exactly; so
does this. A separable convolution is PyTorch's depthwise ``conv1`` then 1x1 ``pointwise``, kept
as two Keras layers under those names. smp's features: ``relu2`` (stride 2), the outputs of
``block1`` (4), ``block2`` (8) and ``block11`` (16), and ``bn4`` without a ReLU (32).

``settings.grid2d.Encoders.xception_forward``: smp 0.1.0, which trained the released models,
feeds block12 with block10's output (block11 feeds only the stride-16 feature, held in the model
by a ``FeatureTap``); smp 0.1.1 and later feed it block11's (``fixed``).
"""

from tfcovseg.models.grid2d.encoders.encoder import ROOT, Encoder
from tfcovseg.models.grid2d.encoders.imagenet import INCEPTION_MEAN_STD
from tfcovseg.models.grid2d.encoders.layers import (
    add,
    batch_norm,
    conv2d,
    depthwise_conv2d,
    feature_tap,
    layer_name,
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
SMP_010_SKIPPED = 11  # the block smp 0.1.0's forward leaves off the path to block12


def separable_conv(x, filters, path):
    """SeparableConv2d(c, filters, 3, padding=1, bias=False)."""
    x = depthwise_conv2d(x, 3, f"{path}.conv1")
    return conv2d(x, filters, 1, f"{path}.pointwise")


def block(x, path, in_filters, out_filters, reps, stride, start_with_relu, grow_first):
    """Cadene's Block: ``rep`` (ReLU, SeparableConv2d, BN)*reps [+ max pool] plus a shortcut."""
    widths = [out_filters] * reps if grow_first else [in_filters] * (reps - 1) + [out_filters]
    y, index = x, 0
    for unit, width in enumerate(widths):
        if unit or start_with_relu:
            y = relu(y, f"{path}.rep.{index}")
            index += 1
        y = separable_conv(y, width, f"{path}.rep.{index}")
        y = batch_norm(y, f"{path}.rep.{index + 1}")
        index += 2
    if stride != 1:
        y = max_pool(y, 3, stride, f"{path}.rep.{index}", padding=1)
    if out_filters != in_filters or stride != 1:
        x = conv2d(x, out_filters, 1, f"{path}.skip", stride=stride)
        x = batch_norm(x, f"{path}.skipbn")
    return add([y, x], f"{path}.add")


def xception_graph(x, settings):
    x = conv2d(x, 32, 3, f"{ROOT}.conv1", stride=2, padding=SMP_STEM_PADDING)
    x = relu(batch_norm(x, f"{ROOT}.bn1"), f"{ROOT}.relu1")
    x = conv2d(x, 64, 3, f"{ROOT}.conv2", padding=SMP_STEM_PADDING)
    x = relu(batch_norm(x, f"{ROOT}.bn2"), f"{ROOT}.relu2")
    for index in sorted(BLOCKS):
        y = block(x, f"{ROOT}.block{index}", *BLOCKS[index])
        if index == SMP_010_SKIPPED and settings.xception_forward == "smp_0.1.0":
            y = feature_tap(x, y, f"{ROOT}.block{index}.tap")
        x = y
    x = relu(batch_norm(separable_conv(x, 1536, f"{ROOT}.conv3"), f"{ROOT}.bn3"), f"{ROOT}.relu3")
    return batch_norm(separable_conv(x, 2048, f"{ROOT}.conv4"), f"{ROOT}.bn4")


TAPS = (None, *(layer_name(f"{ROOT}.{path}") for path in
                ("relu2", "block1.add", "block2.add", "block11.add", "bn4")))

ENCODERS = {
    "xception": Encoder("xception", xception_graph, taps=TAPS, mean_std=INCEPTION_MEAN_STD),
}
