"""DenseNet-121, 161, 169 and 201 (torchvision ``densenet*``) as segmentation_models_pytorch's
encoder uses them.

Layers carry torchvision's module paths (``encoder.features.denseblock2.denselayer3.conv1``).
smp's features: ``relu0`` (stride 2) and each transition's BN-ReLU before its convolution
(strides 4, 8, 16); the output is ``norm5`` without the classifier's ReLU, as smp's encoder
returns it. (Keras' DenseNet121/169/201 in segmentation_models end with a ReLU: a difference of
the Keras library, kept where it belongs.)
"""

import re

from tfcovseg.models.grid2d.encoders.encoder import ROOT, Encoder
from tfcovseg.models.grid2d.encoders.imagenet import TORCHVISION_MEAN_STD
from tfcovseg.models.grid2d.encoders.layers import (
    batch_norm,
    concat,
    conv2d,
    layer_name,
    layers,
    max_pool,
    relu,
)

# torchvision.models.densenet*: num_init_features, growth_rate, block_config; bn_size 4
CONFIGS = {
    "densenet121": (64, 32, (6, 12, 24, 16)),
    "densenet161": (96, 48, (6, 12, 36, 24)),
    "densenet169": (64, 32, (6, 12, 32, 32)),
    "densenet201": (64, 32, (6, 12, 48, 32)),
}
BN_SIZE = 4
COMPRESSION = 2  # each transition halves the channels
FEATURES = f"{ROOT}.features"

# torchvision's own fix for its ImageNet files, which name ``norm1`` as ``norm.1`` (and so on)
OLD_DENSELAYER_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def dense_layer(x, growth_rate, path):
    y = relu(batch_norm(x, f"{path}.norm1"), f"{path}.relu1")
    y = conv2d(y, BN_SIZE * growth_rate, 1, f"{path}.conv1")
    y = relu(batch_norm(y, f"{path}.norm2"), f"{path}.relu2")
    y = conv2d(y, growth_rate, 3, f"{path}.conv2", padding=1)
    return concat([x, y], f"{path}.cat")


def transition(x, path):
    y = relu(batch_norm(x, f"{path}.norm"), f"{path}.relu")  # a decoder feature
    y = conv2d(y, x.shape[-1] // COMPRESSION, 1, f"{path}.conv")
    return layers.AveragePooling2D(2, 2, name=layer_name(f"{path}.pool"))(y)


def densenet_graph(init_features, growth_rate, block_config):
    def graph(x, _settings):
        x = conv2d(x, init_features, 7, f"{FEATURES}.conv0", stride=2, padding=3)
        x = relu(batch_norm(x, f"{FEATURES}.norm0"), f"{FEATURES}.relu0")
        x = max_pool(x, 3, 2, f"{FEATURES}.pool0", padding=1)
        for block, layer_count in enumerate(block_config, start=1):
            for index in range(1, layer_count + 1):
                x = dense_layer(x, growth_rate, f"{FEATURES}.denseblock{block}.denselayer{index}")
            if block < len(block_config):
                x = transition(x, f"{FEATURES}.transition{block}")
        return batch_norm(x, f"{FEATURES}.norm5")

    return graph


def torchvision_keys(state_dict: dict) -> dict:
    return {OLD_DENSELAYER_KEY.sub(r"\1\2", key): value for key, value in state_dict.items()}


TAPS = (None, layer_name(f"{FEATURES}.relu0"),
        *(layer_name(f"{FEATURES}.transition{block}.relu") for block in (1, 2, 3)),
        layer_name(f"{FEATURES}.norm5"))

ENCODERS = {
    name: Encoder(name, densenet_graph(*config), taps=TAPS, mean_std=TORCHVISION_MEAN_STD,
                  torch_keys=torchvision_keys)
    for name, config in CONFIGS.items()
}
