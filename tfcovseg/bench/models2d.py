"""A grid cell's Keras model: a segmentation_models architecture with the paper's Table 1 settings.

The model takes one grey channel ``[B, H, W, 1]`` (HU normalised with mean -500, std 500) and
returns float32 sigmoid probabilities ``[B, H, W, 1]``. The grey channel is repeated to the
three channels the ImageNet encoders expect; the authors' PyTorch models take ``in_channels=1``
instead, where segmentation_models_pytorch sums the pretrained RGB kernels of the first
convolution: the same function for ImageNet weights, but a randomly initialised first
convolution here has three times the parameters of theirs (a few thousand at most).

Structural differences from segmentation_models_pytorch (smp), which the paper used:
- PSPNet: smp pools with adaptive average pooling, so any input size works; segmentation_models
  pools with fixed windows and needs H and W divisible by 6 x downsample_factor (48 at the
  paper's depth 3 = output stride 8). Inputs are zero-padded (0 = -500 HU after normalisation)
  up to the next multiple and the output is cropped back: 512 -> 528, 8 pixels each side.
  smp's PSP branches have in_channels / 4 filters each; segmentation_models' have
  ``psp_conv_filters`` (512) each, so its PSPNet has more parameters. Both upsample the output
  by 8 bilinearly (smp with align_corners=True, Keras with half-pixel centres).
- Unet: the decoder upsamples with nearest neighbour and two conv-BN-ReLU per block in both
  libraries; segmentation_models takes its skips from named encoder layers (activations before
  each downsampling), which for some encoders are not exactly smp's stage outputs.
- FPN: segmentation_models' segmentation head has ``pyramid_block_filters // 2`` = 128 filters
  (the paper's 128); merge "sum" is smp's "add". The paper's "no BN" is smp's default, whose
  segmentation blocks use GroupNorm(32) instead; segmentation_models offers BN or no norm, so
  here they are conv + ReLU without normalisation.
- Linknet: smp's decoder block (conv 1x1 -> transposed conv 4x4 stride 2 + BN + ReLU -> conv 1x1,
  32 channels before the head) is segmentation_models' "transpose" block with a final 32 filters
  (``linknet_decoder_block``, ``linknet_final_filters``); segmentation_models' head is a 3x3
  convolution where smp's is 1x1, and it adds two 3x3 centre blocks after VGG encoders.
"""

import tensorflow as tf

from tfcovseg.bench.config import Architectures
from tfcovseg.bench.grid import Cell
from tfcovseg.config import from_dict
from tfcovseg.errors import TfcovsegError

PSP_POOL_LEVELS = 6  # segmentation_models' largest pyramid level: the map must split into 6x6
SEGMENTATION_MODEL = "segmentation_model"  # the nested segmentation_models model
DOWNLOAD_FAILURE = "URL fetch failure"  # how tf_keras' get_file reports a failed download


class ImagenetUnavailable(TfcovsegError):
    """ImageNet weights for an encoder could not be downloaded (offline) or found in the cache."""


def _segmentation_models():
    import segmentation_models as sm

    try:
        import tfcovseg.bench.backbones  # noqa: F401  (registers vgg11, dpn68, ... when present)
    except ModuleNotFoundError as err:
        if err.name != "tfcovseg.bench.backbones":
            raise
    return sm


def available_encoders() -> list[str]:
    return list(_segmentation_models().Backbones.models_names())


def check_encoders(encoders) -> None:
    """Raise a TfcovsegError naming encoders segmentation_models does not know."""
    known = set(available_encoders())
    unknown = [e for e in encoders if e not in known]
    if unknown:
        raise TfcovsegError(
            f"unknown encoder(s) {', '.join(unknown)}; available: {', '.join(sorted(known))}"
        )


def psp_input_size(size: int, downsample_factor: int) -> int:
    """The smallest size >= ``size`` segmentation_models' PSPNet accepts."""
    step = PSP_POOL_LEVELS * downsample_factor
    return -(-size // step) * step


def _architecture(arch: str, encoder: str, settings: Architectures, input_shape, weights):
    sm = _segmentation_models()
    common = dict(classes=1, activation="sigmoid", encoder_weights=weights, input_shape=input_shape)
    if arch == "unet":
        return sm.Unet(encoder, decoder_filters=settings.unet_decoder_filters,
                       decoder_use_batchnorm=settings.unet_decoder_batchnorm, **common)
    if arch == "linknet":
        return sm.Linknet(encoder, decoder_use_batchnorm=settings.linknet_decoder_batchnorm,
                          decoder_block_type=settings.linknet_decoder_block,
                          decoder_filters=(None, None, None, None, settings.linknet_final_filters),
                          **common)
    if arch == "fpn":
        return sm.FPN(encoder, pyramid_block_filters=settings.fpn_pyramid_filters,
                      pyramid_use_batchnorm=settings.fpn_batchnorm,
                      pyramid_aggregation=settings.fpn_aggregation,
                      pyramid_dropout=settings.fpn_dropout, **common)
    if arch == "pspnet":
        return sm.PSPNet(encoder, downsample_factor=settings.pspnet_downsample_factor,
                         psp_conv_filters=settings.pspnet_filters,
                         psp_use_batchnorm=settings.pspnet_batchnorm,
                         psp_dropout=settings.pspnet_dropout, **common)
    raise TfcovsegError(f"unknown architecture {arch!r}; allowed: unet, linknet, fpn, pspnet")


def _architecture_with_weights(arch, encoder, settings, input_shape, weights):
    try:
        net = _architecture(arch, encoder, settings, input_shape, weights)
    except Exception as err:  # get_file raises a bare Exception; anything else is re-raised
        if weights is None or not _weights_missing(err):
            raise
        raise ImagenetUnavailable(
            f"no ImageNet weights for {encoder}: offline and not in the Keras cache "
            f"(~/.keras/models); {err}"
        ) from None
    return tf.keras.Model(net.inputs, net.outputs, name=SEGMENTATION_MODEL)


def _weights_missing(err: Exception) -> bool:
    """A failed download (segmentation_models' encoders) or a missing converted file (ours)."""
    if str(err).startswith(DOWNLOAD_FAILURE):
        return True
    try:
        from tfcovseg.bench.backbones.imagenet import MissingImagenetWeights
    except ModuleNotFoundError:
        return False
    return isinstance(err, MissingImagenetWeights)


def build_cell_model(cell: Cell, settings: Architectures, size: int) -> tf.keras.Model:
    """The cell's model for ``size x size`` grey images; ImageNet init downloads (or reads the cache).

    Raises ``ImagenetUnavailable`` when the ImageNet weights cannot be had.
    """
    weights = "imagenet" if cell.init == "imagenet" else None
    grey = tf.keras.Input((size, size, 1), name="ct")
    rgb = tf.keras.layers.Concatenate(name="grey_to_rgb")([grey, grey, grey])
    if cell.arch == "pspnet":
        padded = psp_input_size(size, settings.pspnet_downsample_factor)
        before, after = (padded - size) // 2, (padded - size + 1) // 2
        net = _architecture_with_weights(cell.arch, cell.encoder, settings,
                                         (padded, padded, 3), weights)
        rgb = tf.keras.layers.ZeroPadding2D(((before, after), (before, after)), name="psp_pad")(rgb)
        out = net(rgb)
        out = tf.keras.layers.Cropping2D(((before, after), (before, after)), name="psp_crop")(out)
    else:
        net = _architecture_with_weights(cell.arch, cell.encoder, settings, (None, None, 3), weights)
        out = net(rgb)
    out = tf.keras.layers.Activation("linear", dtype="float32", name="probability")(out)
    return tf.keras.Model(grey, out, name=f"{cell.arch}_{cell.encoder}")


def trainable_parameters(model: tf.keras.Model) -> int:
    """Trainable parameters, as the authors count them (``requires_grad``; no BN statistics)."""
    return int(sum(tf.keras.backend.count_params(w) for w in model.trainable_weights))


def first_conv_kernel(model: tf.keras.Model):
    """The encoder's first convolution kernel ``[kh, kw, in, out]`` (for Fig. 8)."""
    for layer in _all_layers(model):
        if isinstance(layer, tf.keras.layers.Conv2D):
            return layer.kernel.numpy()
    raise TfcovsegError(f"model {model.name} has no Conv2D layer")


def _all_layers(model):
    for layer in model.layers:
        if isinstance(layer, tf.keras.Model):
            yield from _all_layers(layer)
        else:
            yield layer


def load_cell_model(bench_dir, cell_id: str) -> tf.keras.Model:
    """A trained cell's model with its kept weights (best validation loss), ready to fine-tune."""
    from tfcovseg.bench import store

    result = store.read_result(bench_dir, cell_id)
    if result is None or result.get("status") != store.DONE:
        raise TfcovsegError(f"cell {cell_id} has no finished result", store.result_path(bench_dir, cell_id))
    cell = Cell(**result["cell"])
    settings = from_dict(Architectures, result["config"]["architectures"], "architectures")
    random_init = Cell(cell.experiment, cell.arch, cell.encoder, "random")  # weights come from the file
    model = build_cell_model(random_init, settings, int(result["image_size"]))
    weights = store.weights_path(bench_dir, cell_id)
    if not weights.is_file():
        raise TfcovsegError("weights file missing", weights)
    model.load_weights(str(weights))
    return model

