"""A grid cell's Keras model, from one of two families (``architectures.networks``).

- ``paper`` (default): the networks the authors trained, segmentation_models_pytorch's
  Unet/Linknet/FPN/PSPNet at Table 1's settings with one input channel
  (``tfcovseg.models.grid2d.networks.paper_network``); the grid's encoder names are mapped to
  smp's (``settings.bench.smp_encoder_name``). Their released checkpoints convert
  (``tfcovseg.bench.released``).
- ``segmentation_models``: qubvel's Keras networks with segmentation_models' keyword arguments
  closest to Table 1 (the ``architectures`` fields). Their encoders, decoders and heads differ
  from smp's (README, "The 2D benchmark grid"; GRID2D.md section 3). The grey channel is repeated
  to the three channels the encoders take. PSPNet pools with fixed windows, so inputs are
  zero-padded (0 = -500 HU after normalisation) to the next multiple of 6 x downsample factor
  (512 -> 528) and the output cropped back.

Either model takes one grey channel ``[B, H, W, 1]`` (HU normalised with mean -500, std 500)
and returns float32 sigmoid probabilities ``[B, H, W, 1]``.
"""

import segmentation_models as sm
import tensorflow as tf

from tfcovseg.bench import store
from tfcovseg.bench.grid import Cell
from tfcovseg.config import from_dict
from tfcovseg.errors import TfcovsegError
from tfcovseg.models.grid2d.encoders import ENCODERS  # also registers vgg11, dpn68, ... with sm
from tfcovseg.models.grid2d.encoders.imagenet import MissingImagenetWeights
from tfcovseg.models.grid2d.networks import paper_network
from tfcovseg.settings.bench import Architectures, Networks, grid_encoder_name, smp_encoder_name

PSP_POOL_LEVELS = 6  # segmentation_models' largest pyramid level: the map must split into 6x6
SEGMENTATION_MODEL = "segmentation_model"  # the nested segmentation_models model
DOWNLOAD_FAILURE = "URL fetch failure"  # how tf_keras' get_file reports a failed download


class ImagenetUnavailable(TfcovsegError):
    """ImageNet weights for an encoder could not be downloaded (offline) or found in the cache."""


def available_encoders(networks: Networks = "paper") -> list[str]:
    """The grid's encoder names the family builds."""
    if networks == "paper":
        return [grid_encoder_name(name) for name in ENCODERS]
    return list(sm.Backbones.models_names())


def check_encoders(encoders, networks: Networks = "paper") -> None:
    """Raise a TfcovsegError naming encoders the family ``networks`` does not build."""
    known = set(available_encoders(networks))
    unknown = [e for e in encoders if e not in known]
    if unknown:
        raise TfcovsegError(
            f"unknown encoder(s) {', '.join(unknown)} for networks {networks!r}; "
            f"available: {', '.join(sorted(known))}"
        )


def psp_input_size(size: int, downsample_factor: int) -> int:
    """The smallest size >= ``size`` segmentation_models' PSPNet accepts."""
    step = PSP_POOL_LEVELS * downsample_factor
    return -(-size // step) * step


def _architecture(arch: str, encoder: str, settings: Architectures, input_shape, weights):
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
    return str(err).startswith(DOWNLOAD_FAILURE) or isinstance(err, MissingImagenetWeights)


def build_cell_model(cell: Cell, settings: Architectures, size: int) -> tf.keras.Model:
    """The cell's model for ``size x size`` grey images, of the family ``settings.networks``;
    ImageNet init reads the converted file (paper) or downloads (or reads the Keras cache).

    Raises ``ImagenetUnavailable`` when the ImageNet weights cannot be had, ``ConfigError``
    when a paper network cannot take ``size``.
    """
    weights = "imagenet" if cell.init == "imagenet" else None
    if settings.networks == "paper":
        return _paper_model(cell, settings, size, weights)
    return _segmentation_models_model(cell, settings, size, weights)


def _paper_model(cell: Cell, settings: Architectures, size: int, weights) -> tf.keras.Model:
    try:
        return paper_network(cell.arch, smp_encoder_name(cell.encoder), (size, size, 1), weights,
                             encoder_settings=settings.encoders)
    except MissingImagenetWeights as err:
        raise ImagenetUnavailable(err.problem, err.path) from None


def _segmentation_models_model(cell: Cell, settings: Architectures, size: int, weights):
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
    """A cell's model with its kept weights, ready to fine-tune: a trained cell's (best
    validation loss) or a converted released model's (``tfcovseg convert-grid``); the cell's
    result records which family of networks it is."""
    result = store.read_result(bench_dir, cell_id)
    if result is None or result.get("status") not in store.WITH_WEIGHTS:
        raise TfcovsegError(f"cell {cell_id} has no finished or converted result",
                            store.result_path(bench_dir, cell_id))
    cell = Cell(**result["cell"])
    settings = from_dict(Architectures, result["config"]["architectures"], "architectures")
    random_init = Cell(cell.experiment, cell.arch, cell.encoder, "random")  # weights come from the file
    model = build_cell_model(random_init, settings, int(result["image_size"]))
    weights = store.weights_path(bench_dir, cell_id)
    if not weights.is_file():
        raise TfcovsegError("weights file missing", weights)
    model.load_weights(str(weights))
    return model

