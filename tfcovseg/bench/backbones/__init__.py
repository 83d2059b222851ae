"""Encoders of Bizopoulos et al.'s grid that segmentation_models 1.0.1 lacks, registered with its
backbone factory on import: vgg11, vgg13, densenet161, dpn68, dpn98, inceptionv4, xception.

After ``import tfcovseg.bench.backbones``, ``sm.Unet("dpn68")`` (and Linknet, FPN, PSPNet) build.
Each encoder has the structure of the PyTorch encoder segmentation_models_pytorch gives the paper
(explicit padding, so outputs equal PyTorch's) and feeds the decoder the same tensors.
``encoder_weights="imagenet"`` reads a file converted from the PyTorch ImageNet weights
(see ``tfcovseg.bench.backbones.imagenet`` and ``convert``).
"""

import segmentation_models as sm

from tfcovseg.bench.backbones import densenet, dpn, inception_v4, vgg, xception
from tfcovseg.bench.backbones.encoder import Encoder

ENCODERS: dict[str, Encoder] = {**vgg.ENCODERS, **densenet.ENCODERS, **dpn.ENCODERS,
                               **inception_v4.ENCODERS, **xception.ENCODERS}


def register(encoders=ENCODERS) -> None:
    """Add ``encoders`` to segmentation_models' ``Backbones``, in the class tables its own backbones
    are declared in (1.0.1 has no public registration call); un-delete the names it drops."""
    for name, encoder in encoders.items():
        sm.Backbones._models_update[name] = [encoder.build, encoder.preprocess_input]
        sm.Backbones._default_feature_layers[name] = encoder.feature_layers
    sm.Backbones._models_delete = [n for n in sm.Backbones._models_delete if n not in encoders]


register()
