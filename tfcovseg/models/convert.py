"""PyTorch weights to Keras: torchvision's r3d_18 (encoder) or a faimed3d DynamicUnet3D (whole U-Net).

Each Keras layer is paired with the PyTorch module it ports, by name; ``torch_weights.assign``
checks every key and shape before anything changes. The result is a Keras weights file (.h5),
written atomically: ``r3d18(weights=...)`` / ``unet3d(encoder_weights=...)`` read the encoder
file, ``model.load_weights`` the U-Net file (build ``unet3d`` with the printed arguments).
Beside it goes a sidecar ``<name>.json`` saying what the file holds (``SIDECAR_KIND``), so that
``tfcovseg.load_model`` and ``tfcovseg train --init`` can rebuild the network from the file alone::

    {"kind": "tfcovseg-converted-weights", "version": 1,
     "source": "faimed3d" | "torchvision", "layout": "paper-era faimed3d (06ccb92)",
     "network": "unet3d" | "r3d18", "arguments": {...unet3d keyword arguments...},
     "converted_from": "unet.pth"}

faimed3d wrote two state_dict layouts (PAPERS.md section 1, "State_dict layouts"; the authors'
full key lists are in tests/models/fixtures/faimed3d-state-dict-keys): the paper era's (commit
06ccb92: 3-channel stem, BatchNorm + ReLU after the encoder) and the later one (commit 7287c68:
1-channel summed stem, no such BatchNorm). ``FAIMED3D_LAYOUTS`` says where each keeps each part.
"""

import hashlib
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from tfcovseg.errors import TfcovsegError, WeightsError
from tfcovseg.files import WEIGHTS_SUFFIX, atomic_path, read_json_of_kind, save_weights, write_json
from tfcovseg.models.layers import InstanceNorm
from tfcovseg.models.r3d18 import BLOCKS_PER_STAGE, PREFIX, STAGE_CHANNELS, r3d18
from tfcovseg.models.torch_weights import assign, read_state_dict, strip_prefix
from tfcovseg.models.unet3d import INPUT_CHANNELS, unet3d

KINETICS_URL = "https://download.pytorch.org/models/r3d_18-b3b3357e.pth"
# torchvision names its files <name>-<first 8 hex digits of the file's sha256>.pth
KINETICS_SHA256_PREFIX = "b3b3357e"
CLASSIFIER_PREFIX = "fc."  # the Kinetics-400 classifier: not part of the encoder
SIDECAR_KIND = "tfcovseg-converted-weights"
SOURCES = {"torchvision": "r3d18", "faimed3d": "unet3d"}  # what each source converts to


@dataclass(frozen=True)
class Faimed3dLayout:
    """Where one faimed3d version keeps each part of its DynamicUnet3D (module names)."""

    name: str
    encoder_stage: str  # formatted with the stage: 0 the stem, 1..4 layer1..layer4
    bridge: str | None  # the paper-era BatchNorm + ReLU between encoder and middle
    middle: str
    blocks: tuple[str, ...]  # the UnetBlock3Ds, deepest first
    head_up: str  # the bare transposed conv
    resblock: str
    final: str

    @property
    def markers(self) -> tuple[str, str]:
        """The stem and final conv kernels: they tell the layouts apart and give the arguments."""
        return f"{self.encoder_stage.format(0)}.0.weight", f"{self.final}.0.weight"


FAIMED3D_LAYOUTS = (
    Faimed3dLayout(
        name="paper-era faimed3d (06ccb92)",
        encoder_stage="layers.0.layers.{}.layers.0",
        bridge="layers.1.bn",
        middle="layers.2",
        blocks=("layers.3", "layers.4", "layers.5"),
        head_up="layers.6.0.0",
        resblock="layers.9.convpath",
        final="layers.10",
    ),
    Faimed3dLayout(
        name="later faimed3d (7287c68)",
        encoder_stage="layers.0.{}",
        bridge=None,
        middle="layers.1",
        blocks=("layers.2", "layers.3", "layers.4"),
        head_up="layers.5.0.0",
        resblock="layers.8.convpath",
        final="layers.9",
    ),
)


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


def faimed3d_encoder_module(torchvision_module: str, layout: Faimed3dLayout) -> str:
    """``layer2.0.conv1.0`` -> ``layers.0.2.0.conv1.0`` (later), ``layers.0.layers.2.layers.0.0.conv1.0`` (paper era)."""
    head, rest = torchvision_module.split(".", 1)
    stage = 0 if head == "stem" else int(head.removeprefix("layer"))
    return f"{layout.encoder_stage.format(stage)}.{rest}"


def unet_modules(model, layout: Faimed3dLayout) -> list:
    """``(faimed3d module, Keras layer name)`` for every weighted layer of the U-Net."""
    modules = [(faimed3d_encoder_module(torch, layout), keras) for torch, keras in encoder_modules(model)]
    if layout.bridge is not None:
        modules.append((layout.bridge, "bridge_bn"))
    for conv in (0, 1):
        modules += _conv_layer(f"{layout.middle}.{conv}", f"middle_conv{conv + 1}")
    for number, torch_name in enumerate(layout.blocks, start=1):
        keras_name = f"decoder_block{number}"
        modules += _conv_layer(f"{torch_name}.up.0", f"{keras_name}_up")
        modules.append((f"{torch_name}.bn", f"{keras_name}_skip_norm"))
        modules += _conv_layer(f"{torch_name}.conv1", f"{keras_name}_conv1")
        modules += _conv_layer(f"{torch_name}.conv2", f"{keras_name}_conv2")
    modules.append((layout.head_up, "head_up"))
    for conv in (0, 1):
        modules += _conv_layer(f"{layout.resblock}.{conv}", f"head_res_conv{conv + 1}")
    modules += [(f"{layout.final}.0", "head_conv"), (f"{layout.final}.1", "logits")]
    return modules


def _conv_layer(torch_name, keras_name):
    """fastai's ConvLayer: ``Sequential(conv, BN, ...)``; tfcovseg names the BN ``<conv>_bn``."""
    return [(f"{torch_name}.0", keras_name), (f"{torch_name}.1", f"{keras_name}_bn")]


def _has_layer(model, name) -> bool:
    return any(layer.name == name for layer in model.layers)


def pairs_for(model, modules) -> list:
    return [pair for module, name in modules for pair in variable_pairs(module, model.get_layer(name))]


def faimed3d_layout(state_dict: dict, source) -> Faimed3dLayout:
    """The layout whose stem and final conv kernels the state_dict has."""
    for layout in FAIMED3D_LAYOUTS:
        if all(key in state_dict for key in layout.markers):
            return layout
    expected = " or ".join(f"{' and '.join(layout.markers)} ({layout.name})" for layout in FAIMED3D_LAYOUTS)
    raise WeightsError(f"not a faimed3d DynamicUnet3D on r3d_18: expected the keys {expected}", source)


def faimed3d_arguments(state_dict: dict, layout: Faimed3dLayout) -> dict:
    """The ``unet3d`` keyword arguments a faimed3d state_dict of ``layout`` was trained with."""
    stem, final = (state_dict[key] for key in layout.markers)
    return {
        "classes": int(final.shape[0]),
        # instance norm keeps no running statistics
        "skip_norm": "batch" if f"{layout.blocks[0]}.bn.running_mean" in state_dict else "instance",
        "encoder_norm": layout.bridge is not None,
        "input_channels": "summed" if stem.shape[1:2] == (INPUT_CHANNELS["summed"],) else "tripled",
    }


def convert_weights(torchvision=None, faimed3d=None, out="weights/r3d18_kinetics400.h5") -> dict:
    """Convert one PyTorch state_dict (.pth or .safetensors) to a Keras weights file ``out``.

    ``torchvision``: an r3d_18 state_dict -> R3D-18 encoder weights (the classifier is dropped).
    ``faimed3d``: a DynamicUnet3D state_dict of either faimed3d layout (``FAIMED3D_LAYOUTS``,
    detected from the keys) -> U-Net weights. The sidecar (``sidecar_path(out)``) is written
    after the weights. Returns the ``unet3d`` keyword arguments the weights fit (``{}`` for
    encoder weights, which fit any U-Net).
    """
    if (torchvision is None) == (faimed3d is None):
        raise TfcovsegError("give exactly one of --torchvision or --faimed3d")
    if Path(out).suffix != ".h5":
        raise TfcovsegError("the output must be a Keras .h5 weights file", out)
    source = torchvision or faimed3d
    state_dict = strip_prefix(read_state_dict(source))
    if torchvision is not None:
        arguments, found = {}, "torchvision r3d_18"
        model = r3d18()
        pairs = pairs_for(model, encoder_modules(model))
        assign(pairs, state_dict, source=source, allow_unused=(CLASSIFIER_PREFIX,))
    else:
        layout = faimed3d_layout(state_dict, source)
        arguments, found = faimed3d_arguments(state_dict, layout), layout.name
        model = unet3d(**arguments)
        pairs = pairs_for(model, unet_modules(model, layout))
        assign(pairs, state_dict, source=source)
    save_weights(model, out)
    source_kind = "torchvision" if torchvision is not None else "faimed3d"
    write_json(sidecar_path(out), {
        "kind": SIDECAR_KIND, "version": 1, "source": source_kind, "layout": found,
        "network": SOURCES[source_kind], "arguments": arguments, "converted_from": str(source)})
    built_with = f"; build it with unet3d(**{arguments})" if arguments else ""
    print(f"converted {len(pairs)} tensors of {model.name} ({found}) from {source} to {out}{built_with}")
    return arguments


def sidecar_path(weights) -> Path:
    """The JSON beside a weights file: ``unet.h5`` -> ``unet.json``, ``x.weights.h5`` -> ``x.json``."""
    weights = Path(weights)
    name = weights.name.removesuffix(WEIGHTS_SUFFIX) if weights.name.endswith(WEIGHTS_SUFFIX) else weights.stem
    return weights.with_name(f"{name}.json")


def read_sidecar(weights) -> dict:
    """The sidecar ``convert_weights`` wrote beside ``weights`` (``WeightsError`` if it is
    missing, of another kind, or names an unknown source)."""
    path = sidecar_path(weights)
    if not path.is_file():
        raise WeightsError(f"no {path.name} beside the weights file saying what it holds "
                           f"(tfcovseg convert-weights writes one; convert the file again)", weights)
    data = read_json_of_kind(path, SIDECAR_KIND, "converted-weights description")
    if data.get("source") not in SOURCES or not isinstance(data.get("arguments"), dict):
        raise WeightsError(f"source {data.get('source')!r} or arguments {data.get('arguments')!r} "
                           f"not understood; expected a source among {', '.join(SOURCES)} and a "
                           f"dict of unet3d arguments", path)
    return data


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
            raise WeightsError(
                f"could not download {url} ({err}); download it by hand and run "
                f"tfcovseg convert-weights --torchvision FILE --out {out}", source) from None
    if not sha256(source).startswith(KINETICS_SHA256_PREFIX):
        raise WeightsError(f"sha256 does not start with {KINETICS_SHA256_PREFIX}: corrupt download, delete it", source)
    convert_weights(torchvision=source, out=out)
    return Path(out)
