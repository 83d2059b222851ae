"""PyTorch weights to Keras: torchvision's r3d_18 (encoder) or a faimed3d DynamicUnet3D (whole U-Net).

Each Keras layer is paired with the PyTorch module it ports, by name; ``torch_weights.assign``
checks every key and shape before anything changes. The result is a Keras weights file (.h5),
written atomically: ``r3d18(weights=...)`` / ``unet3d(encoder_weights=...)`` read the encoder
file, ``model.load_weights`` the U-Net file (build ``unet3d`` with the printed arguments).
"""

import hashlib
import urllib.request
from pathlib import Path

import tensorflow as tf

from tfcovseg.errors import TfcovsegError
from tfcovseg.files import atomic_path, save_weights
from tfcovseg.models.layers import InstanceNorm
from tfcovseg.models.r3d18 import BLOCKS_PER_STAGE, PREFIX, STAGE_CHANNELS, r3d18
from tfcovseg.models.torch_weights import assign, read_state_dict, strip_prefix
from tfcovseg.models.unet3d import SKIP_STAGES, unet3d

KINETICS_URL = "https://download.pytorch.org/models/r3d_18-b3b3357e.pth"
# torchvision names its files <name>-<first 8 hex digits of the file's sha256>.pth
KINETICS_SHA256_PREFIX = "b3b3357e"
CLASSIFIER_PREFIX = "fc."  # the Kinetics-400 classifier: not part of the encoder
FAIMED3D_ENCODER = "layers.0"
BRIDGE_LAYERS = 2  # paper-era faimed3d: BatchNorm3d + ReLU at layers.1 and layers.2


def variable_pairs(module: str, layer) -> list:
    """``(torch_key, keras_variable, layout)`` for each weight of one Keras layer."""
    if isinstance(layer, tf.keras.layers.BatchNormalization):
        names = {"weight": layer.gamma, "bias": layer.beta,
                 "running_mean": layer.moving_mean, "running_var": layer.moving_variance}
        return [(f"{module}.{key}", variable, "same") for key, variable in names.items()]
    if isinstance(layer, InstanceNorm):
        return [(f"{module}.weight", layer.gamma, "same"), (f"{module}.bias", layer.beta, "same")]
    layout = "conv3d_transpose" if isinstance(layer, tf.keras.layers.Conv3DTranspose) else "conv3d"
    pairs = [(f"{module}.weight", layer.kernel, layout)]
    if layer.use_bias:
        pairs.append((f"{module}.bias", layer.bias, "same"))
    return pairs


def encoder_modules(model) -> list:
    """``(torchvision module, Keras layer name)`` for every weighted layer of R3D-18."""
    modules = [("stem.0", f"{PREFIX}stem_conv"), ("stem.1", f"{PREFIX}stem_bn")]
    for stage in range(1, len(STAGE_CHANNELS) + 1):
        for block in range(BLOCKS_PER_STAGE):
            torch_name, keras_name = f"layer{stage}.{block}", f"{PREFIX}layer{stage}_{block}"
            modules += [
                (f"{torch_name}.conv1.0", f"{keras_name}_conv1"), (f"{torch_name}.conv1.1", f"{keras_name}_bn1"),
                (f"{torch_name}.conv2.0", f"{keras_name}_conv2"), (f"{torch_name}.conv2.1", f"{keras_name}_bn2"),
            ]
            if _has_layer(model, f"{keras_name}_downsample_conv"):
                modules += [(f"{torch_name}.downsample.0", f"{keras_name}_downsample_conv"),
                            (f"{torch_name}.downsample.1", f"{keras_name}_downsample_bn")]
    return modules


def faimed3d_encoder_module(torchvision_module: str) -> str:
    """``stem.0`` -> ``layers.0.0.0``, ``layer2.0.conv1.0`` -> ``layers.0.2.0.conv1.0``."""
    head, rest = torchvision_module.split(".", 1)
    index = 0 if head == "stem" else int(head.removeprefix("layer"))
    return f"{FAIMED3D_ENCODER}.{index}.{rest}"


def unet_modules(model, encoder_norm: bool) -> list:
    """``(faimed3d module, Keras layer name)`` for every weighted layer of the U-Net."""
    modules = [(faimed3d_encoder_module(torch), keras) for torch, keras in encoder_modules(model)]
    first = 1
    if encoder_norm:
        modules.append(("layers.1", "bridge_bn"))
        first += BRIDGE_LAYERS
    for conv in (0, 1):
        modules += _conv_layer(f"layers.{first}.{conv}", f"middle_conv{conv + 1}")
    for block in range(1, SKIP_STAGES + 1):
        torch_name, keras_name = f"layers.{first + block}", f"decoder_block{block}"
        modules += _conv_layer(f"{torch_name}.up", f"{keras_name}_up")
        modules.append((f"{torch_name}.bn", f"{keras_name}_skip_norm"))
        modules += _conv_layer(f"{torch_name}.conv1", f"{keras_name}_conv1")
        modules += _conv_layer(f"{torch_name}.conv2", f"{keras_name}_conv2")
    up, resblock, final = first + SKIP_STAGES + 1, first + SKIP_STAGES + 4, first + SKIP_STAGES + 5
    modules.append((f"layers.{up}", "head_up"))
    for conv in (0, 1):
        modules += _conv_layer(f"layers.{resblock}.convpath.{conv}", f"head_res_conv{conv + 1}")
    modules += [(f"layers.{final}.0", "head_conv"), (f"layers.{final}.1", "logits")]
    return modules


def _conv_layer(torch_name, keras_name):
    """fastai's ConvLayer: ``Sequential(conv, BN, ...)``; tfcovseg names the BN ``<conv>_bn``."""
    return [(f"{torch_name}.0", keras_name), (f"{torch_name}.1", f"{keras_name}_bn")]


def _has_layer(model, name) -> bool:
    return any(layer.name == name for layer in model.layers)


def pairs_for(model, modules) -> list:
    return [pair for module, name in modules for pair in variable_pairs(module, model.get_layer(name))]


def faimed3d_arguments(state_dict: dict, source) -> dict:
    """The ``unet3d`` keyword arguments a faimed3d state_dict was trained with."""
    stem = f"{faimed3d_encoder_module('stem.0')}.weight"
    if stem not in state_dict:
        raise TfcovsegError(f"not a faimed3d DynamicUnet3D on r3d_18 state_dict (no {stem})", source)
    encoder_norm = "layers.1.running_mean" in state_dict
    first = 1 + (BRIDGE_LAYERS if encoder_norm else 0)
    final = f"layers.{first + SKIP_STAGES + 5}.0.weight"
    if final not in state_dict:
        raise TfcovsegError(f"not a faimed3d DynamicUnet3D state_dict (no final conv {final})", source)
    return {
        "classes": int(state_dict[final].shape[0]),
        "skip_norm": "batch" if f"layers.{first + 1}.bn.running_mean" in state_dict else "instance",
        "encoder_norm": encoder_norm,
        "input_channels": "summed" if state_dict[stem].shape[1] == 1 else "tripled",
    }


def convert_weights(torchvision=None, faimed3d=None, out="weights/r3d18_kinetics400.h5") -> dict:
    """Convert one PyTorch state_dict (.pth or .safetensors) to a Keras weights file ``out``.

    ``torchvision``: an r3d_18 state_dict -> R3D-18 encoder weights (the classifier is dropped).
    ``faimed3d``: a DynamicUnet3D state_dict -> U-Net weights. Returns the ``unet3d`` keyword
    arguments the weights fit (``{}`` for encoder weights, which fit any U-Net).
    """
    if (torchvision is None) == (faimed3d is None):
        raise TfcovsegError("give exactly one of --torchvision or --faimed3d")
    if Path(out).suffix != ".h5":
        raise TfcovsegError("the output must be a Keras .h5 weights file", out)
    source = torchvision or faimed3d
    state_dict = strip_prefix(read_state_dict(source))
    if torchvision is not None:
        arguments = {}
        model = r3d18()
        pairs = pairs_for(model, encoder_modules(model))
        assign(pairs, state_dict, source=source, allow_unused=(CLASSIFIER_PREFIX,))
    else:
        arguments = faimed3d_arguments(state_dict, source)
        model = unet3d(**arguments)
        pairs = pairs_for(model, unet_modules(model, arguments["encoder_norm"]))
        assign(pairs, state_dict, source=source)
    save_weights(model, out)
    built_with = f"; build it with unet3d(**{arguments})" if arguments else ""
    print(f"converted {len(pairs)} tensors of {model.name} from {source} to {out}{built_with}")
    return arguments


def sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_kinetics_weights(out="weights/r3d18_kinetics400.h5", url=KINETICS_URL, cache_dir=None) -> Path:
    """Download torchvision's Kinetics-400 r3d_18 file (needs internet), check it, convert it."""
    cache = Path(cache_dir or Path.home() / ".cache" / "tfcovseg")
    source = cache / Path(url).name
    if not source.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        try:
            with atomic_path(source, suffix=".pth") as tmp:
                urllib.request.urlretrieve(url, tmp)
        except OSError as err:  # urllib's URLError and HTTPError are OSErrors
            raise TfcovsegError(
                f"could not download {url} ({err}); download it by hand and run "
                f"tfcovseg convert-weights --torchvision FILE --out {out}", source) from None
    if not sha256(source).startswith(KINETICS_SHA256_PREFIX):
        raise TfcovsegError(f"sha256 does not start with {KINETICS_SHA256_PREFIX}: corrupt download, delete it", source)
    convert_weights(torchvision=source, out=out)
    return Path(out)
