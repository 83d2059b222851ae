"""Bressem et al.'s 3D U-Net: faimed3d's ``DynamicUnet3D`` on R3D-18, as a Keras model.

Built as the authors' code builds it (PAPERS.md section 1, "Code facts"):

    image [B,D,H,W,1] -> repeated to 3 channels ("tripled"; or a 1-channel stem, "summed")
    encoder: R3D-18 stem, layer1..layer4          skips: layer3, layer2, layer1
    bridge:  BatchNorm + ReLU (paper-era faimed3d only; ``encoder_norm``)
    middle:  ConvLayer 512->1024, ConvLayer 1024->512
    decoder: three blocks (transposed conv 3x3x3 without padding, BN, ReLU, nearest resize to the
             skip; skip through BN (or instance norm); concat; ReLU; two ConvLayers)
    head:    bare transposed conv, nearest resize to the input, concat with the encoder input,
             fastai ResBlock, 1x1x1 conv + BN -> float32 logits [B,D,H,W,classes]

A ConvLayer is fastai's conv (padding (k-1)//2, no bias) -> BN -> ReLU. Trainable parameters
with 2 classes, the authors' counts: 95,372,348 paper-era faimed3d (06ccb92: tripled input,
bridge BN; the defaults) and 95,324,416 later faimed3d (7287c68: ``encoder_norm=False,
input_channels="summed"``). ``encoder_norm=False`` with the tripled input (95,371,324) is a
combination faimed3d never builds.
"""

import numpy as np
import tensorflow as tf

from tfcovseg.errors import TfcovsegError
from tfcovseg.models.layers import InstanceNorm, ResizeLike, batch_norm, torch_conv3d
from tfcovseg.models.r3d18 import PREFIX, encoder_features, r3d18, transfer_encoder

INPUT_CHANNELS = {"tripled": 3, "summed": 1}
SKIP_NORMS = ("batch", "instance")
SKIP_STAGES = 3  # layer3, layer2, layer1: where fastai sees the spatial size change
MIDDLE_WIDENING = 2  # fastai's middle_conv goes ni -> 2 ni -> ni

# fastai's ConvLayer initialises with kaiming_normal_ (fan_in, ReLU gain) ...
DECODER_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {"scale": 2.0, "mode": "fan_in", "distribution": "untruncated_normal"},
}
# ... and its BatchNorm with weight 1 (0 for NormType.BatchZero) and bias 1e-3.
FASTAI_BN_BIAS = 1e-3


def unet3d(
    input_shape=(None, None, None, 1),
    classes=2,
    encoder_weights=None,
    skip_norm="batch",
    encoder_norm=True,
    input_channels="tripled",
    lesion_prior=None,
    width=1.0,
    name="unet3d",
) -> tf.keras.Model:
    """The 3D U-Net; every argument is JSON-serialisable (run.json stores them).

    ``encoder_weights``: R3D-18 weights from ``tfcovseg convert-weights --torchvision``.
    ``skip_norm``: "batch" (the authors' code) or "instance" (the paper's text).
    ``encoder_norm``: the paper-era BatchNorm + ReLU between encoder and middle.
    ``input_channels``: "tripled" (grey repeated to RGB, paper era) or "summed" (1-channel stem
    with the RGB kernels summed, later faimed3d; same encoder output, 129 head channels).
    ``lesion_prior``: None (the authors' initialisation) or the expected share of foreground
    voxels; the offsets of the logits' BatchNorm then start at the log priors (centred), so the
    untrained network predicts mostly background (``prior_offsets``).
    ``width``: 1 is the authors' network; a smaller value scales every channel count of the
    encoder (and so of the decoder, which follows the encoder), for quick runs on a CPU.
    Kinetics weights need width 1.
    """
    _check_arguments(input_shape, skip_norm, input_channels, lesion_prior, width, encoder_weights)
    image = tf.keras.Input(shape=tuple(input_shape), name="image")
    encoder_input = image
    if input_channels == "tripled":
        encoder_input = tf.keras.layers.Concatenate(name="image_tripled")([image] * INPUT_CHANNELS["tripled"])
    *skips, x = encoder_features(encoder_input, width)
    if encoder_norm:
        x = fastai_batch_norm("bridge_bn")(x)
        x = tf.keras.layers.ReLU(name="bridge_relu")(x)
    channels = x.shape[-1]
    x = conv_layer(x, channels * MIDDLE_WIDENING, "middle_conv1")
    x = conv_layer(x, channels, "middle_conv2")
    skips = skips[::-1][:SKIP_STAGES]
    for block, skip in enumerate(skips, start=1):
        x = unet_block(x, skip, skip_norm, final_div=block < len(skips), name=f"decoder_block{block}")
    logits = head(x, encoder_input, classes, prior_offsets(classes, lesion_prior))
    model = tf.keras.Model(image, logits, name=name)
    if encoder_weights is not None:
        kinetics_channels = INPUT_CHANNELS["tripled"]
        transfer_encoder(r3d18((None, None, None, kinetics_channels), weights=encoder_weights), model)
    return model


def prior_offsets(classes, lesion_prior):
    """Initial logits offsets: centred log priors, background ``1 - p``, each other class ``p / (C-1)``.

    The logits pass through a BatchNorm, so each class's logit has roughly zero mean and unit
    variance at first; with fastai's offset (1e-3) every voxel starts near ``1 / classes``. With
    rare lesions this leaves the background at a probability close to the lesion's and takes
    many steps of the offsets to undo (the prior initialisation of Lin et al. 2017, Focal Loss).
    """
    if lesion_prior is None:
        return None
    priors = np.array([1.0 - lesion_prior] + [lesion_prior / (classes - 1)] * (classes - 1))
    offsets = np.log(priors)
    return offsets - offsets.mean()


def _check_arguments(input_shape, skip_norm, input_channels, lesion_prior, width, encoder_weights):
    if len(input_shape) != 4 or input_shape[-1] != 1:
        raise TfcovsegError(f"unet3d takes a grey volume: input_shape (D, H, W, 1), got {tuple(input_shape)}")
    if skip_norm not in SKIP_NORMS:
        raise TfcovsegError(f"skip_norm must be one of {', '.join(SKIP_NORMS)}, got {skip_norm!r}")
    if input_channels not in INPUT_CHANNELS:
        raise TfcovsegError(f"input_channels must be one of {', '.join(INPUT_CHANNELS)}, got {input_channels!r}")
    if lesion_prior is not None and not 0.0 < lesion_prior < 1.0:
        raise TfcovsegError(f"lesion_prior must be in (0, 1) or null, got {lesion_prior}")
    if not width > 0 or (encoder_weights is not None and width != 1):
        raise TfcovsegError(f"width must be positive, and 1 with encoder_weights; got {width}")


def fastai_batch_norm(name, zero=False, dtype=None, offsets=None):
    offsets = FASTAI_BN_BIAS if offsets is None else offsets
    return batch_norm(name, gamma_initializer="zeros" if zero else "ones",
                      beta_initializer=tf.keras.initializers.Constant(offsets), dtype=dtype)


def conv_layer(x, filters, name, kernel=3, zero_bn=False, relu=True):
    """fastai's ConvLayer: conv without bias -> BN (-> ReLU); layers ``name``, ``name_bn``, ``name_relu``."""
    x = torch_conv3d(x, filters, kernel, 1, name, DECODER_INITIALIZER)
    x = fastai_batch_norm(f"{name}_bn", zero=zero_bn)(x)
    return tf.keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def transposed_conv(x, filters, name, use_bias=False):
    """fastai's transposed ConvLayer: kernel 3, stride 1, padding 0, so each axis grows by 2."""
    return tf.keras.layers.Conv3DTranspose(
        filters, 3, padding="valid", use_bias=use_bias, kernel_initializer=DECODER_INITIALIZER, name=name,
    )(x)


def skip_normalisation(kind, name):
    return fastai_batch_norm(name) if kind == "batch" else InstanceNorm(name=name)


def unet_block(x, skip, skip_norm, final_div, name):
    """faimed3d's UnetBlock3D: upsample ``x`` to ``skip``, concat, two ConvLayers."""
    up = transposed_conv(x, x.shape[-1] // 2, f"{name}_up")
    up = fastai_batch_norm(f"{name}_up_bn")(up)
    up = tf.keras.layers.ReLU(name=f"{name}_up_relu")(up)
    up = ResizeLike(name=f"{name}_resize")([up, skip])
    skip = skip_normalisation(skip_norm, f"{name}_skip_norm")(skip)
    x = tf.keras.layers.Concatenate(name=f"{name}_concat")([up, skip])
    x = tf.keras.layers.ReLU(name=f"{name}_relu")(x)
    channels = x.shape[-1] if final_div else x.shape[-1] // 2
    x = conv_layer(x, channels, f"{name}_conv1")
    return conv_layer(x, channels, f"{name}_conv2")


def head(x, encoder_input, classes, offsets=None):
    """Back to the input size, merge with the input, fastai ResBlock, 1x1x1 conv + BN logits.

    ``offsets``: initial BN offsets of the logits (``prior_offsets``), fastai's 1e-3 if None.
    """
    x = transposed_conv(x, x.shape[-1], "head_up", use_bias=True)
    x = ResizeLike(name="head_resize")([x, encoder_input])
    x = tf.keras.layers.Concatenate(name="head_concat")([x, encoder_input])
    channels = x.shape[-1]
    y = conv_layer(x, channels, "head_res_conv1")
    y = conv_layer(y, channels, "head_res_conv2", zero_bn=True, relu=False)
    x = tf.keras.layers.Add(name="head_res_add")([y, x])
    x = tf.keras.layers.ReLU(name="head_res_relu")(x)
    x = torch_conv3d(x, classes, 1, 1, "head_conv", DECODER_INITIALIZER)
    # float32 here keeps the logits (and so the loss) in float32 under mixed precision.
    return fastai_batch_norm("logits", dtype="float32", offsets=offsets)(x)


def encoder_layers(model: tf.keras.Model) -> list:
    """The R3D-18 layers of a U-Net (fastai's first parameter group)."""
    return [layer for layer in model.layers if layer.name.startswith(PREFIX)]


def freeze_encoder(model: tf.keras.Model, keep_bn_trainable=True) -> None:
    """fastai's ``freeze()``: encoder convs frozen; encoder BNs keep learning and updating stats.

    Keras runs a BatchNorm with ``trainable=False`` in inference mode, so with
    ``keep_bn_trainable`` the BN layers are left alone. Recompile the model afterwards.
    """
    for layer in encoder_layers(model):
        if keep_bn_trainable and isinstance(layer, tf.keras.layers.BatchNormalization):
            continue
        layer.trainable = False


def unfreeze_encoder(model: tf.keras.Model) -> None:
    """Make every encoder layer trainable again. Recompile the model afterwards."""
    for layer in encoder_layers(model):
        layer.trainable = True
