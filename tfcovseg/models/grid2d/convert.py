"""A segmentation_models_pytorch state_dict (a whole model: ``encoder.*``, ``decoder.*``,
``segmentation_head.*``) -> the Keras network of ``networks.paper_network``.

The naming rule is the whole mapping: a Keras layer is named after its PyTorch module path
with dots as underscores (``encoder.layer1.0.conv1`` -> ``encoder_layer1_0_conv1``), and each
Keras variable after its PyTorch parameter or buffer (``kernel`` -> ``weight``). The module
paths are read from the checkpoint itself, so names whose parts hold underscores
(``seg_blocks``, ``_conv_stem``) map back exactly. ``tfcovseg.models.torch_weights.assign``
checks every key and shape first and lists what is missing, unexpected or mis-shaped.
"""

import tensorflow as tf

from tfcovseg.models.torch_weights import assign, read_state_dict, strip_prefix

# Keras variable -> PyTorch tensor of the same module
TORCH_PARAMETERS = {"kernel": "weight", "depthwise_kernel": "weight", "bias": "bias",
                    "gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
                    "moving_variance": "running_var"}
# how a PyTorch tensor becomes the Keras variable (tfcovseg.models.torch_weights.LAYOUTS):
# Conv2d (out, in, kh, kw) and ConvTranspose2d (in, out, kh, kw) take the same transpose to
# Keras' (kh, kw, in, out) and Conv2DTranspose's (kh, kw, out, in)
KERNEL_LAYOUTS = {"kernel": "conv2d", "depthwise_kernel": "depthwise2d"}
WRAPPER_PREFIXES = ("module.",)  # torch.nn.DataParallel


def load_smp_state_dict(network: tf.keras.Model, state_dict: dict, source="state_dict") -> None:
    """Assign a whole-model smp state_dict to ``network``; nothing changes unless every key fits."""
    state_dict = strip_prefix(state_dict, WRAPPER_PREFIXES)
    assign(torch_pairs(network, state_dict), state_dict, source)


def load_smp_checkpoint(network: tf.keras.Model, path) -> None:
    """``load_smp_state_dict`` from a ``.pt``/``.pth``/``.safetensors`` file (weights only)."""
    load_smp_state_dict(network, read_state_dict(path), source=str(path))


def torch_pairs(network: tf.keras.Model, state_dict: dict) -> list:
    """``(torch_key, keras_variable, layout)`` for every variable of ``network``.

    A layer whose module the checkpoint lacks is listed under its Keras name.
    """
    modules = {key.rpartition(".")[0] for key in state_dict}
    module_of = {module.replace(".", "_"): module for module in modules}
    pairs = []
    for layer in network.layers:
        module = module_of.get(layer.name, layer.name)
        for variable in layer.weights:
            role = variable.name.rpartition("/")[2].partition(":")[0]
            pairs.append((f"{module}.{TORCH_PARAMETERS[role]}", variable,
                          KERNEL_LAYOUTS.get(role, "same")))
    return pairs

