"""A segmentation_models_pytorch state_dict (a whole model: ``encoder.*``, ``decoder.*``,
``segmentation_head.*``) -> the Keras network of ``networks.paper_network``.

The naming rule is the whole mapping: a state_dict key ``<module path>.<parameter>`` belongs to
the layer ``layer_name(<module path>)``, dots as underscores (``decoder.blocks.0.conv1.0.weight``
-> layer ``decoder_blocks_0_conv1_0``, its kernel). The module paths are read from the
checkpoint itself, so names whose parts hold underscores (``seg_blocks``, ``_conv_stem``) map
back exactly. ``tfcovseg.models.torch_weights.assign`` checks every key and shape first and lists
what is missing, unexpected or mis-shaped; nothing changes unless everything fits.
"""

import tensorflow as tf

from tfcovseg.errors import WeightsError
from tfcovseg.models.grid2d.encoders.layers import layer_name
from tfcovseg.models.torch_weights import assign, read_state_dict, strip_prefix

layers = tf.keras.layers

# Keras layer class -> (Keras variable attribute, PyTorch parameter or buffer, layout); first
# match. Conv2DTranspose is a Conv2D: ConvTranspose2d's (in, out, kh, kw) takes Conv2d's
# transpose to Keras' (kh, kw, out, in).
TORCH_PARAMETERS = (
    (layers.DepthwiseConv2D, (("depthwise_kernel", "weight", "depthwise2d"), ("bias", "bias", "same"))),
    (layers.Conv2D, (("kernel", "weight", "conv2d"), ("bias", "bias", "same"))),
    (layers.BatchNormalization, (("gamma", "weight", "same"), ("beta", "bias", "same"),
                                 ("moving_mean", "running_mean", "same"),
                                 ("moving_variance", "running_var", "same"))),
    (layers.GroupNormalization, (("gamma", "weight", "same"), ("beta", "bias", "same"))),
)
WRAPPER_PREFIXES = ("module.",)  # torch.nn.DataParallel


def load_smp_checkpoint(network: tf.keras.Model, path) -> None:
    """``load_smp_state_dict`` from a ``.pt``/``.pth``/``.safetensors`` file (weights only)."""
    load_smp_state_dict(network, read_state_dict(path), source=str(path))


def load_smp_state_dict(network: tf.keras.Model, state_dict: dict, source="state_dict") -> None:
    """Assign a whole-model smp state_dict to ``network``; every key must fit."""
    load_state_dict(network, strip_prefix(state_dict, WRAPPER_PREFIXES), source)


def load_state_dict(model: tf.keras.Model, state_dict: dict, source="state_dict",
                    allow_unused=()) -> None:
    """Assign a PyTorch state_dict to the layers of ``model`` named after its module paths; keys
    starting with one of ``allow_unused`` may lack a layer."""
    assign(torch_pairs(model, module_paths(state_dict, source)), state_dict, source, allow_unused)


def module_paths(state_dict: dict, source="state_dict") -> dict[str, str]:
    """Keras layer name -> PyTorch module path, for every module holding a key of ``state_dict``."""
    paths = {}
    for key in state_dict:
        path = key.rpartition(".")[0]
        other = paths.setdefault(layer_name(path), path)
        if other != path:
            raise WeightsError(f"modules {other} and {path} would share the layer {layer_name(path)}",
                               source)
    return paths


def torch_pairs(model: tf.keras.Model, paths: dict[str, str]) -> list:
    """``(torch_key, keras_variable, layout)`` for every variable of ``model``; ``paths`` maps
    layer names to module paths (a layer missing from it reads as its own name)."""
    pairs = []
    for layer in model.layers:
        if not layer.weights:
            continue
        variables = next((v for kind, v in TORCH_PARAMETERS if isinstance(layer, kind)), None)
        if variables is None:
            raise TypeError(f"no PyTorch mapping for layer {layer.name} ({type(layer).__name__})")
        path = paths.get(layer.name, layer.name)
        pairs += [(f"{path}.{key}", getattr(layer, attr), layout) for attr, key, layout in variables
                  if getattr(layer, attr, None) is not None]
    return pairs
