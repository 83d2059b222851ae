"""ResNet 18/34/50/101/152 (He et al. 2016) and ResNeXt-50 32x4d (Xie et al. 2017) as
segmentation_models_pytorch's ``ResNetEncoder``: torchvision's ResNet, not the pre-activation
nets with an input BatchNorm that segmentation_models 1.0.1 ships under the same names.

Stem ``conv1`` 7x7/2 (padding 3), ``bn1``, ``relu``, ``maxpool`` 3/2 (padding 1), then
``layer1``..``layer4`` of BasicBlocks (18, 34) or Bottlenecks (torchvision's v1.5: the stride on
the 3x3 convolution; ResNeXt's 3x3 grouped). smp's features: ``relu`` (stride 2) and the output
of each layer (strides 4 to 32), the last block's final ReLU (``encoder.layer<n>.<last>.relu``).
"""

import functools

from tfcovseg.models.grid2d.encoders.encoder import ROOT, Encoder
from tfcovseg.models.grid2d.encoders.imagenet import TORCHVISION_MEAN_STD
from tfcovseg.models.grid2d.encoders.layers import (
    add,
    batch_norm,
    conv2d,
    layer_name,
    max_pool,
    relu,
)

# smp's resnet_encoders "params" (torchvision.models.resnet): block, layers, groups, width_per_group
CONFIGS = {
    "resnet18": dict(block="basic", blocks=(2, 2, 2, 2)),
    "resnet34": dict(block="basic", blocks=(3, 4, 6, 3)),
    "resnet50": dict(block="bottleneck", blocks=(3, 4, 6, 3)),
    "resnet101": dict(block="bottleneck", blocks=(3, 4, 23, 3)),
    "resnet152": dict(block="bottleneck", blocks=(3, 8, 36, 3)),
    "resnext50_32x4d": dict(block="bottleneck", blocks=(3, 4, 6, 3), groups=32, width_per_group=4),
}
STEM_WIDTH = 64
PLANES = (64, 128, 256, 512)  # per layer
LAYER_STRIDES = (1, 2, 2, 2)
EXPANSION = 4  # Bottleneck.expansion (BasicBlock: 1)
BASE_WIDTH = 64  # torchvision: width = planes * (width_per_group / 64) * groups


def basic_block(x, planes, stride, path):
    y = conv2d(x, planes, 3, f"{path}.conv1", stride=stride, padding=1)
    y = relu(batch_norm(y, f"{path}.bn1"), f"{path}.bn1.relu")
    y = batch_norm(conv2d(y, planes, 3, f"{path}.conv2", padding=1), f"{path}.bn2")
    return residual(x, y, stride, path)


def bottleneck(x, planes, stride, path, groups=1, width_per_group=BASE_WIDTH):
    width = int(planes * (width_per_group / BASE_WIDTH)) * groups
    y = relu(batch_norm(conv2d(x, width, 1, f"{path}.conv1"), f"{path}.bn1"), f"{path}.bn1.relu")
    y = conv2d(y, width, 3, f"{path}.conv2", stride=stride, padding=1, groups=groups)
    y = relu(batch_norm(y, f"{path}.bn2"), f"{path}.bn2.relu")
    y = batch_norm(conv2d(y, planes * EXPANSION, 1, f"{path}.conv3"), f"{path}.bn3")
    return residual(x, y, stride, path)


def residual(x, y, stride, path):
    """``relu(y + identity)``, the identity through ``downsample`` when the shape changes."""
    if stride != 1 or x.shape[-1] != y.shape[-1]:
        x = conv2d(x, y.shape[-1], 1, f"{path}.downsample.0", stride=stride)
        x = batch_norm(x, f"{path}.downsample.1")
    return relu(add([y, x], f"{path}.add"), f"{path}.relu")


def resnet_graph(block, blocks, groups=1, width_per_group=BASE_WIDTH):
    unit = (basic_block if block == "basic" else
            functools.partial(bottleneck, groups=groups, width_per_group=width_per_group))

    def graph(x, _settings):
        x = conv2d(x, STEM_WIDTH, 7, f"{ROOT}.conv1", stride=2, padding=3)
        x = relu(batch_norm(x, f"{ROOT}.bn1"), f"{ROOT}.relu")
        x = max_pool(x, 3, 2, f"{ROOT}.maxpool", padding=1)
        for layer, (count, planes, stride) in enumerate(zip(blocks, PLANES, LAYER_STRIDES), start=1):
            for index in range(count):
                x = unit(x, planes, stride if index == 0 else 1, f"{ROOT}.layer{layer}.{index}")
        return x

    return graph


def resnet_taps(blocks) -> tuple[str | None, ...]:
    layer_outputs = (f"{ROOT}.layer{layer}.{count - 1}.relu"
                     for layer, count in enumerate(blocks, start=1))
    return (None, layer_name(f"{ROOT}.relu"), *map(layer_name, layer_outputs))


ENCODERS = {
    name: Encoder(name, resnet_graph(**config), taps=resnet_taps(config["blocks"]),
                  mean_std=TORCHVISION_MEAN_STD)
    for name, config in CONFIGS.items()
}
