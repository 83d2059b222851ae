"""An encoder of the 2D grid as both libraries see it.

For segmentation_models_pytorch (smp), the library of the paper: ``features`` returns what smp's
``encoder(x)`` returns, the input and the features at strides 2, 4, 8, 16, 32 (VGG: block 1's
output instead of the input), cut at ``depth``, and their channels (smp's ``out_channels``);
every layer carries its smp module path (``layers.layer_name``). For qubvel's
segmentation_models: ``build`` is a backbone model function (output: stride 32) and
``feature_layers`` the layers at strides 16, 8, 4, 2 it hands to the decoders.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from tfcovseg.errors import TfcovsegError, WeightsError
from tfcovseg.models.grid2d.encoders import imagenet
from tfcovseg.models.grid2d.encoders.layers import feature_tap
from tfcovseg.settings.grid2d import Encoders

RGB = 3
ROOT = "encoder"  # smp's ``SegmentationModel.encoder``: every encoder key starts with "encoder."
DEPTHS = range(1, 6)  # smp's encoder depth: the number of stride-2 stages returned
DEFAULTS = Encoders()  # the authors' most likely library versions


class EncoderFeatures(NamedTuple):
    features: list  # smp's ``encoder(x)``: depth + 1 tensors, strides 1, 2, ..., 2 ** depth
    out_channels: tuple[int, ...]  # smp's ``encoder.out_channels``


def same_keys(state_dict: dict) -> dict:
    return state_dict


@dataclass(frozen=True)
class Encoder:
    name: str
    graph: Callable  # (Keras input tensor, Encoders settings) -> stride-32 tensor, layers named
    taps: tuple[str | None, ...]  # layers of smp's features at strides 1 .. 32; None: the input
    mean_std: tuple  # of the ImageNet weights, RGB in [0, 1]
    torch_keys: Callable[[dict], dict] = same_keys  # old checkpoint key styles -> current ones
    classifier: tuple[str, ...] = ("classifier.", "fc.", "last_linear.", "_fc.")  # not converted

    @property
    def feature_layers(self) -> tuple[str, ...]:
        """segmentation_models' ``Backbones._default_feature_layers``: strides 16, 8, 4, 2."""
        return tuple(reversed(self.taps[1:5]))

    def features(self, inputs, settings: Encoders = DEFAULTS, depth: int = 5) -> EncoderFeatures:
        """smp's ``encoder(x)`` on the Keras tensor ``inputs``.

        Below depth 5 the deepest feature returned carries the rest of the encoder (``FeatureTap``):
        smp builds the whole encoder, so its state_dict and parameter count hold every stage.
        """
        if depth not in DEPTHS:
            raise TfcovsegError(f"{self.name}: encoder depth {depth}; allowed: 1 to 5")
        graph = tf.keras.Model(inputs, self.graph(inputs, settings))
        tensors = [inputs if tap is None else graph.get_layer(tap).output for tap in self.taps]
        if depth < DEPTHS[-1]:
            tensors[depth] = feature_tap(tensors[depth], graph.output, f"{ROOT}.depth{depth}_tap")
        features = tensors[:depth + 1]
        return EncoderFeatures(features, tuple(f.shape[-1] for f in features))

    def build(self, input_shape=None, weights="imagenet", include_top=False, **_submodules):
        """segmentation_models' backbone contract: ``(input_shape, weights, include_top)``.

        ``weights`` is None, "imagenet" (the converted cache file) or a path to a .h5 file.
        segmentation_models also passes its Keras submodules; tfcovseg always uses tf.keras.
        """
        if include_top:
            raise TfcovsegError(f"{self.name} is an encoder only: include_top must be False")
        path = imagenet.weights_file(self.name, weights)
        inputs = tf.keras.Input(tuple(input_shape or (None, None, RGB)), name="input")
        model = tf.keras.Model(inputs, self.graph(inputs, DEFAULTS), name=self.name)
        if path is not None:
            self.load_weights(model, path)
        return model

    def load_weights(self, model: tf.keras.Model, path) -> None:
        """Set this encoder's layers in ``model`` (the encoder or a network holding it) from a
        converted .h5 file (``convert``). A first convolution with other than 3 input channels
        gets smp's adaptation of the RGB kernel (``patch_first_conv``)."""
        rgb = tf.keras.Input((None, None, RGB))
        source = tf.keras.Model(rgb, self.graph(rgb, DEFAULTS))
        try:
            source.load_weights(str(path))
        except (ValueError, OSError) as err:  # h5py/Keras: unreadable or other layers
            raise TfcovsegError(f"not {self.name} weights ({err})", path) from None
        targets = {layer.name: layer for layer in model.layers}
        stem, updates, problems = first_conv(source), [], []
        for layer in (layer for layer in source.layers if layer.weights):
            target = targets.get(layer.name)
            if target is None:
                problems.append(f"{layer.name} missing")
                continue
            values = layer.get_weights()
            if layer is stem:
                values[0] = patch_first_conv(values[0], target.kernel.shape[2], axis=2)
            shapes = [tuple(w.shape) for w in target.weights]
            if shapes != [v.shape for v in values]:
                problems.append(f"{layer.name} is {shapes}, the file has {[v.shape for v in values]}")
            updates.append((target, values))
        if problems:
            raise WeightsError(f"the model does not hold {self.name}: {'; '.join(problems)}", path)
        for target, values in updates:
            target.set_weights(values)

    @property
    def preprocess_input(self):
        return imagenet.normaliser(self.mean_std)


def first_conv(model: tf.keras.Model) -> tf.keras.layers.Layer:
    """The convolution that sees the image (smp's ``patch_first_conv`` takes the first Conv2d)."""
    return next(layer for layer in model.layers if isinstance(layer, tf.keras.layers.Conv2D))


def patch_first_conv(kernel: np.ndarray, in_channels: int, axis: int) -> np.ndarray:
    """smp's ``utils.patch_first_conv`` for pretrained weights: an RGB kernel (input channels on
    ``axis``) for ``in_channels`` inputs: summed for 1, else repeated and scaled by 3 / n."""
    if in_channels == 1:
        return kernel.sum(axis=axis, keepdims=True)
    return np.take(kernel, np.arange(in_channels) % RGB, axis=axis) * (RGB / in_channels)

