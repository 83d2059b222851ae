"""DenseNet-161 (torchvision ``densenet161``) as segmentation_models_pytorch's encoder uses it.

Layers carry torchvision's module paths (``features/denseblock2/denselayer3/conv1``). Decoder
features: ``relu0`` (stride 2) and each transition's BN-ReLU before its convolution (strides
4, 8, 16); the output is ``norm5`` without the classifier's ReLU, as smp's encoder returns it.
(Keras' DenseNet121/169/201 in segmentation_models end with a ReLU: a difference of the Keras
library, kept where it belongs.)
"""

import re

from tfcovseg.bench.backbones.encoder import Encoder
from tfcovseg.bench.backbones.imagenet import TORCHVISION_MEAN_STD
from tfcovseg.bench.backbones.layers import batch_norm, concat, conv2d, layers, max_pool, relu

# torchvision.models.densenet161: num_init_features, growth_rate, block_config; bn_size 4
DENSENET161 = (96, 48, (6, 12, 36, 24))
BN_SIZE = 4
COMPRESSION = 2  # each transition halves the channels

# torchvision's own fix for its ImageNet files, which name ``norm1`` as ``norm.1`` (and so on)
OLD_DENSELAYER_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def dense_layer(x, growth_rate, name):
    y = relu(batch_norm(x, f"{name}/norm1"), f"{name}/relu1")
    y = conv2d(y, BN_SIZE * growth_rate, 1, f"{name}/conv1")
    y = relu(batch_norm(y, f"{name}/norm2"), f"{name}/relu2")
    y = conv2d(y, growth_rate, 3, f"{name}/conv2", padding=1)
    return concat([x, y], f"{name}/concat")


def transition(x, name):
    y = relu(batch_norm(x, f"{name}/norm"), f"{name}/relu")  # a decoder feature
    y = conv2d(y, x.shape[-1] // COMPRESSION, 1, f"{name}/conv")
    return layers.AveragePooling2D(2, 2, name=f"{name}/pool")(y)


def densenet_graph(init_features, growth_rate, block_config):
    def graph(x):
        x = conv2d(x, init_features, 7, "features/conv0", stride=2, padding=3)
        x = relu(batch_norm(x, "features/norm0"), "features/relu0")
        x = max_pool(x, 3, 2, "features/pool0", padding=1)
        for block, layer_count in enumerate(block_config, start=1):
            for index in range(1, layer_count + 1):
                x = dense_layer(x, growth_rate, f"features/denseblock{block}/denselayer{index}")
            if block < len(block_config):
                x = transition(x, f"features/transition{block}")
        return batch_norm(x, "features/norm5")

    return graph


def torchvision_keys(state_dict: dict) -> dict:
    return {OLD_DENSELAYER_KEY.sub(r"\1\2", key): value for key, value in state_dict.items()}


ENCODERS = {
    "densenet161": Encoder(
        "densenet161", densenet_graph(*DENSENET161),
        feature_layers=("features/transition3/relu", "features/transition2/relu",
                        "features/transition1/relu", "features/relu0"),
        mean_std=TORCHVISION_MEAN_STD, torch_keys=torchvision_keys),
}
