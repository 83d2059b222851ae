"""Where each grid encoder's ImageNet weights come from, where the converted file is cached,
and which input normalisation the weights expect.

The source files are the ones segmentation_models_pytorch (the authors' library) loads: the
smp-hub safetensors at a pinned revision (the same tensors as torchvision's and Cadene's
``pretrainedmodels`` files, which the converter also accepts). Keras cannot read them, so
``python -m tfcovseg.models.grid2d.encoders.convert NAME [FILE]`` writes
``$KERAS_HOME/models/tfcovseg_<name>_imagenet.h5`` (``KERAS_HOME`` defaults to ``~/.keras``,
as tf_keras' own weight cache) and ``weights="imagenet"`` reads it from there.
"""

import os
from pathlib import Path

import numpy as np

from tfcovseg.errors import TfcovsegError

SMP_HUB = "https://huggingface.co/smp-hub/{name}.imagenet/resolve/{revision}/model.safetensors"

# revisions pinned by segmentation_models_pytorch 0.6.0 (encoders/*.py, "pretrained_settings")
REVISIONS = {
    "vgg11": "ad8b90e1051c38fdbf399cf5016886a1be357390",
    "vgg13": "1b70ff2580f101a8007a48b51e2b5d1e5925dc42",
    "vgg19": "2853d00d7bca364dbb98be4d6afa347e5aeec1f6",
    "resnet18": "3f2325ff978283d47aa6a1d6878ca20565622683",
    "resnet34": "7a57b34f723329ff020b3f8bc41771163c519d0c",
    "resnet50": "00cb74e366966d59cd9a35af57e618af9f88efe9",
    "resnet101": "cd7c15e8c51da86ae6a084515fdb962d0c94e7d1",
    "resnet152": "951dd835e9d086628e447b484584c8983f9e1dd0",
    "resnext50_32x4d": "329793c85d62fd340ae42ae39fb905a63df872e7",
    "densenet121": "a17c96896a265b61338f66f61d3887b24f61995a",
    "densenet161": "9afe0fec51ab2a627141769d97d6f83756d78446",
    "densenet169": "8facfba9fc72f7750879dac9ac6ceb3ab990de8d",
    "densenet201": "ed5deb355d71659391d46fae5e7587460fbb5f84",
    "dpn68": "c209aefdeae6bc93937556629e974b44d4e58535",
    "dpn98": "b2836c86216c1ddce980d832f7deaa4ca22babd3",
    "mobilenet_v2": "e67aa804e17f7b404b629127eabbd224c4e0690b",
    "inceptionv4": "918fb54f07811d82a4ecde3a51156041d0facba9",
    "xception": "01cfaf27c11353b1f0c578e7e26d2c000ea91049",
    "efficientnet-b0": "1bbe7ecc1d5ea1d2058de1a2db063b8701aff314",
    "efficientnet-b1": "5d637466a5215de300a8ccb13a39357df2df2bf4",
    "efficientnet-b2": "a96d4f0295ffbae18ebba173bf7f3c0c8f21990e",
    "efficientnet-b3": "074c54a6c473e0d294690d49cedb6cf463e7127d",
    "efficientnet-b4": "05cd5dde5dab658f00c463f9b9aa0ced76784f40",
    "efficientnet-b5": "69f4d28460a4e421b7860bc26ee7d832e03e01ca",
    "efficientnet-b6": "8570752016f7c62ae149cffa058550fe44e21c8b",
}

# Input normalisation of each weight source, on RGB scaled to [0, 1] (pretrainedmodels' settings).
TORCHVISION_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
DPN_MEAN_STD = ((124 / 255, 117 / 255, 104 / 255), (1 / (0.0167 * 255),) * 3)
INCEPTION_MEAN_STD = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))

PIXEL_MAX = 255.0


class MissingImagenetWeights(TfcovsegError):
    """The converted ImageNet file of an encoder is not in the cache (offline machines)."""


def source_url(name: str) -> str:
    return SMP_HUB.format(name=name, revision=REVISIONS[name])


def cache_path(name: str) -> Path:
    """``$KERAS_HOME/models/tfcovseg_<name>_imagenet.h5`` (``~/.keras`` by default)."""
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return keras_home / "models" / f"tfcovseg_{name}_imagenet.h5"


def weights_file(name: str, weights) -> Path | None:
    """The .h5 file ``weights`` (None, "imagenet" or a path) names for encoder ``name``."""
    if weights is None:
        return None
    path = cache_path(name) if weights == "imagenet" else Path(weights)
    if path.is_file():
        return path
    if weights == "imagenet":
        raise MissingImagenetWeights(
            f"no converted ImageNet weights for {name}: download {source_url(name)} and run "
            f"`python -m tfcovseg.models.grid2d.encoders.convert {name} <downloaded file>` (with "
            f"internet, `python -m tfcovseg.models.grid2d.encoders.convert {name}` does both)", path)
    raise TfcovsegError(f"weights file for {name} not found", path)


def normaliser(mean_std):
    """A segmentation_models ``preprocess_input`` for RGB in [0, 255] and these mean/std."""
    mean, std = (np.asarray(v, dtype=np.float32) for v in mean_std)

    def preprocess_input(x, **_submodules):
        return (np.asarray(x, dtype=np.float32) / PIXEL_MAX - mean) / std

    return preprocess_input
