"""An extra encoder as segmentation_models sees a backbone: a model function, its preprocessing and
the layers whose outputs feed the decoder.

``feature_layers`` lists the outputs at strides 16, 8, 4, 2, as segmentation_models'
``Backbones._default_feature_layers`` does; the model's own output is stride 32. Each level is
the tensor segmentation_models_pytorch's encoder returns at that stride, so the decoders see what
the paper's decoders saw.
"""

from collections.abc import Callable
from dataclasses import dataclass

import tensorflow as tf

from tfcovseg.bench.backbones import imagenet
from tfcovseg.errors import TfcovsegError

RGB = 3


def dotted(layer_name: str) -> str:
    """Keras ``features/conv1_1/bn`` -> PyTorch module path ``features.conv1_1.bn``."""
    return layer_name.replace("/", ".")


def same_keys(state_dict: dict) -> dict:
    return state_dict


@dataclass(frozen=True)
class Encoder:
    name: str
    graph: Callable  # Keras input tensor -> output tensor (stride 32), layers named
    feature_layers: tuple[str, ...]  # strides 16, 8, 4, 2
    mean_std: tuple  # of the ImageNet weights, RGB in [0, 1]
    torch_name: Callable[[str], str] = dotted  # Keras layer name -> PyTorch module path
    torch_keys: Callable[[dict], dict] = same_keys  # old checkpoint key styles -> current ones
    classifier: tuple[str, ...] = ("classifier.", "fc.", "last_linear.")  # dropped when converting

    def build(self, input_shape=None, weights="imagenet", include_top=False, **_submodules):
        """segmentation_models' backbone contract: ``(input_shape, weights, include_top)``.

        ``weights`` is None, "imagenet" (the converted cache file) or a path to a .h5 file.
        segmentation_models also passes its Keras submodules; tfcovseg always uses tf.keras.
        """
        if include_top:
            raise TfcovsegError(f"{self.name} is an encoder only: include_top must be False")
        input_shape = tuple(input_shape or (None, None, RGB))
        path = imagenet.weights_file(self.name, weights)
        if path is not None and input_shape[-1] != RGB:
            raise TfcovsegError(
                f"{self.name} pretrained weights need {RGB} input channels, got {input_shape[-1]}",
                path)
        inputs = tf.keras.Input(input_shape, name="input")
        model = tf.keras.Model(inputs, self.graph(inputs), name=self.name)
        if path is not None:
            try:
                model.load_weights(str(path))
            except (ValueError, OSError) as err:  # h5py/Keras: unreadable or other layers
                raise TfcovsegError(f"not {self.name} weights ({err})", path) from None
        return model

    @property
    def preprocess_input(self):
        return imagenet.normaliser(self.mean_std)
