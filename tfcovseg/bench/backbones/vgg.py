"""VGG 11 and 13 (torchvision ``vgg11``/``vgg13``, no BatchNorm), as segmentation_models_pytorch uses.

Layers are named as Keras' own VGG16/19 (``block3_conv2``, ``block5_pool``) so the family reads
alike; ``torch_name`` maps them to torchvision's ``features.<index>``. The decoder features are
the last convolution of blocks 5, 4, 3, 2 (ReLU included, before the pooling), as in both
libraries.
"""

from tfcovseg.bench.backbones.encoder import Encoder
from tfcovseg.bench.backbones.imagenet import TORCHVISION_MEAN_STD
from tfcovseg.bench.backbones.layers import conv2d, max_pool

# torchvision.models.vgg "cfgs": convolutions per block (widths 64, 128, 256, 512, 512)
BLOCK_WIDTHS = (64, 128, 256, 512, 512)
CONVS_PER_BLOCK = {"vgg11": (1, 1, 2, 2, 2), "vgg13": (2, 2, 2, 2, 2)}
MODULES_PER_CONV = 2  # Conv2d, ReLU in torchvision's ``features``


def vgg_graph(convs_per_block):
    def graph(x):
        for block, (width, convs) in enumerate(zip(BLOCK_WIDTHS, convs_per_block), start=1):
            for conv in range(1, convs + 1):
                x = conv2d(x, width, 3, f"block{block}_conv{conv}", padding=1, use_bias=True,
                           activation="relu")
            x = max_pool(x, 2, 2, f"block{block}_pool")
        return x

    return graph


def torchvision_names(convs_per_block) -> dict[str, str]:
    """``block<b>_conv<c>`` -> ``features.<i>`` in torchvision's Sequential."""
    names, index = {}, 0
    for block, convs in enumerate(convs_per_block, start=1):
        for conv in range(1, convs + 1):
            names[f"block{block}_conv{conv}"] = f"features.{index}"
            index += MODULES_PER_CONV
        index += 1  # MaxPool2d
    return names


def vgg(name: str) -> Encoder:
    convs = CONVS_PER_BLOCK[name]
    last = [f"block{b}_conv{n}" for b, n in enumerate(convs, start=1)]
    return Encoder(name, vgg_graph(convs), feature_layers=tuple(reversed(last))[:4],
                   mean_std=TORCHVISION_MEAN_STD, torch_name=torchvision_names(convs).get)


ENCODERS = {name: vgg(name) for name in CONVS_PER_BLOCK}
