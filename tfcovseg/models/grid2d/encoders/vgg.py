"""VGG 11, 13 and 19 (torchvision ``vgg11``/``vgg13``/``vgg19``, no BatchNorm) as
segmentation_models_pytorch's encoder.

Layers are torchvision's ``features.<index>`` modules, a convolution and its ReLU apart. smp's
features are the ReLU before each max pooling and the last pooling; the first is block 1's
output at stride 1 (not the input), so its ``out_channels`` start with 64.
"""

from tfcovseg.models.grid2d.encoders.encoder import ROOT, Encoder
from tfcovseg.models.grid2d.encoders.imagenet import TORCHVISION_MEAN_STD
from tfcovseg.models.grid2d.encoders.layers import conv2d, layer_name, max_pool, relu

# torchvision.models.vgg "cfgs" A, B, E: convolutions per block (widths 64, 128, 256, 512, 512)
BLOCK_WIDTHS = (64, 128, 256, 512, 512)
CONVS_PER_BLOCK = {"vgg11": (1, 1, 2, 2, 2), "vgg13": (2, 2, 2, 2, 2), "vgg19": (2, 2, 4, 4, 4)}


def vgg_modules(convs_per_block) -> list[tuple[str, str, int]]:
    """torchvision's ``features`` Sequential: (module path, "conv"/"relu"/"pool", width)."""
    kinds = []
    for width, convs in zip(BLOCK_WIDTHS, convs_per_block):
        kinds += [("conv", width), ("relu", width)] * convs + [("pool", width)]
    return [(f"{ROOT}.features.{index}", kind, width) for index, (kind, width) in enumerate(kinds)]


def vgg_graph(convs_per_block):
    def graph(x, _settings):
        for path, kind, width in vgg_modules(convs_per_block):
            if kind == "conv":
                x = conv2d(x, width, 3, path, padding=1, use_bias=True)
            elif kind == "relu":
                x = relu(x, path)
            else:
                x = max_pool(x, 2, 2, path)
        return x

    return graph


def vgg_taps(convs_per_block) -> tuple[str, ...]:
    """smp's ``_out_indexes``: the module before each max pooling, and the last pooling."""
    modules = vgg_modules(convs_per_block)
    before_pools = [modules[i - 1][0] for i, (_, kind, _) in enumerate(modules) if kind == "pool"]
    return tuple(layer_name(path) for path in [*before_pools, modules[-1][0]])


ENCODERS = {
    name: Encoder(name, vgg_graph(convs), taps=vgg_taps(convs), mean_std=TORCHVISION_MEAN_STD)
    for name, convs in CONVS_PER_BLOCK.items()
}
