"""The 25 encoders of Bizopoulos et al.'s grid in segmentation_models_pytorch's layout (smp 0.1.0,
the authors' library): vgg11/13/19, resnet18/34/50/101/152, resnext50_32x4d, densenet121/161/169/
201, dpn68/98, mobilenet_v2, xception, inceptionv4, efficientnet-b0..b6.

Each has smp's structure, explicit padding (so outputs equal PyTorch's) and layers named by their
smp module paths (``encoder_layer1_0_conv1``), so an smp state_dict's ``encoder.*`` keys convert
into it (``convert``). ``encoder_graph`` returns what smp's ``encoder(x)`` returns.

For qubvel's segmentation_models, the seven it lacks (``SEGMENTATION_MODELS_LACKS``) are
registered with its backbone factory on import: after ``import tfcovseg.models.grid2d.encoders``,
``sm.Unet("dpn68")`` (and Linknet, FPN, PSPNet) build. The others keep segmentation_models' own
networks of the same names (``register`` can replace them). ``encoder_weights="imagenet"``
reads a file converted from the PyTorch ImageNet weights (``imagenet`` and ``convert``).
"""

import segmentation_models as sm
import tensorflow as tf

from tfcovseg.errors import TfcovsegError
from tfcovseg.models.grid2d.encoders import (
    densenet,
    dpn,
    efficientnet,
    inception_v4,
    mobilenet_v2,
    resnet,
    vgg,
    xception,
)
from tfcovseg.models.grid2d.encoders.encoder import DEFAULTS, Encoder, EncoderFeatures
from tfcovseg.settings.grid2d import Encoders

ENCODERS: dict[str, Encoder] = {
    **vgg.ENCODERS, **resnet.ENCODERS, **densenet.ENCODERS, **dpn.ENCODERS,
    **mobilenet_v2.ENCODERS, **xception.ENCODERS, **inception_v4.ENCODERS, **efficientnet.ENCODERS,
}
SEGMENTATION_MODELS_LACKS = ("vgg11", "vgg13", "densenet161", "dpn68", "dpn98", "inceptionv4",
                             "xception")
GREY = 1  # the paper's networks take one CT channel


def get_encoder(name: str) -> Encoder:
    if name not in ENCODERS:
        raise TfcovsegError(f"unknown encoder {name!r}; available: {', '.join(ENCODERS)}")
    return ENCODERS[name]


def encoder_graph(name: str, inputs, settings: Encoders = DEFAULTS, depth: int = 5) -> EncoderFeatures:
    """smp's ``get_encoder(name, depth=depth)(x)`` on the Keras tensor ``inputs``: the features
    at strides 1 (the input; VGG: block 1), 2, ..., 2 ** depth, and their channels."""
    return get_encoder(name).features(inputs, settings, depth)


def encoder_model(name: str, input_shape=(None, None, GREY), settings: Encoders = DEFAULTS,
                  depth: int = 5) -> tf.keras.Model:
    """``encoder_graph`` as a model (outputs: the feature list), named ``name``."""
    inputs = tf.keras.Input(tuple(input_shape), name="input")
    return tf.keras.Model(inputs, encoder_graph(name, inputs, settings, depth).features, name=name)


def register(names=SEGMENTATION_MODELS_LACKS) -> None:
    """Add the encoders ``names`` to segmentation_models' ``Backbones``, in the class tables its
    own backbones are declared in (1.0.1 has no public registration call); un-delete the names
    it drops. A name segmentation_models has (resnet18, ...) then builds smp's network."""
    for name in names:
        backbone = get_encoder(name)
        sm.Backbones._models_update[name] = [backbone.build, backbone.preprocess_input]
        sm.Backbones._default_feature_layers[name] = backbone.feature_layers
    sm.Backbones._models_delete = [n for n in sm.Backbones._models_delete if n not in names]


register()
