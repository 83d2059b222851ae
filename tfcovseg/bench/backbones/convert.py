"""PyTorch ImageNet state_dict -> Keras .h5 for the extra encoders.

Every Keras layer with weights names its PyTorch module (``Encoder.torch_name``), so one mapping
serves all families; ``tfcovseg.models.torch_weights.assign`` checks every key and shape before it
changes anything. Usage::

    python -m tfcovseg.bench.backbones.convert dpn68                    # download, convert
    python -m tfcovseg.bench.backbones.convert dpn68 model.safetensors  # a downloaded file
    python -m tfcovseg.bench.backbones.convert dpn68 dpn68.pth --out dpn68.h5

The output defaults to the cache file that ``encoder_weights="imagenet"`` reads
(``tfcovseg.bench.backbones.imagenet.cache_path``). The smp-hub ``.safetensors`` sources need
only the ``safetensors`` package; ``.pth`` files (torchvision's, Cadene's) need torch.
"""

import argparse
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import tensorflow as tf

from tfcovseg.bench.backbones import ENCODERS
from tfcovseg.bench.backbones.imagenet import cache_path, source_url
from tfcovseg.errors import TfcovsegError
from tfcovseg.files import save_weights
from tfcovseg.models.torch_weights import assign, read_state_dict, strip_prefix

layers = tf.keras.layers

# Keras variable attribute -> PyTorch parameter or buffer name
BATCH_NORM_KEYS = (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
                   ("moving_variance", "running_var"))
# prefixes of checkpoints saved from a whole smp model or an encoder wrapper
WRAPPER_PREFIXES = ("module.", "model.", "encoder.")


def torch_pairs(model: tf.keras.Model, torch_name) -> list:
    """``(torch_key, keras_variable, layout)`` for every variable of ``model``."""
    pairs = []
    for layer in model.layers:
        if not layer.weights:
            continue
        prefix = torch_name(layer.name)
        if isinstance(layer, layers.DepthwiseConv2D):
            pairs.append((f"{prefix}.weight", layer.depthwise_kernel, "depthwise2d"))
        elif isinstance(layer, layers.Conv2D):
            pairs.append((f"{prefix}.weight", layer.kernel, "conv2d"))
            if layer.use_bias:
                pairs.append((f"{prefix}.bias", layer.bias, "same"))
        elif isinstance(layer, layers.BatchNormalization):
            pairs += [(f"{prefix}.{key}", getattr(layer, attr), "same") for attr, key in BATCH_NORM_KEYS]
        else:
            raise TypeError(f"no PyTorch mapping for layer {layer.name} ({type(layer).__name__})")
    return pairs


def load_state_dict(model: tf.keras.Model, name: str, state_dict: dict, source="state_dict") -> None:
    """Assign a PyTorch state_dict of encoder ``name`` to ``model`` (built by its builder)."""
    encoder = ENCODERS[name]
    state_dict = encoder.torch_keys(strip_prefix(state_dict, WRAPPER_PREFIXES))
    assign(torch_pairs(model, encoder.torch_name), state_dict, source, allow_unused=encoder.classifier)


def convert_imagenet(name: str, state_dict_path, out_h5=None) -> Path:
    """Convert encoder ``name``'s PyTorch ImageNet weights to the Keras file the builder loads."""
    if name not in ENCODERS:
        raise TfcovsegError(f"unknown encoder {name!r}; convertible: {', '.join(ENCODERS)}")
    out_h5 = Path(out_h5) if out_h5 else cache_path(name)
    model = ENCODERS[name].build(weights=None)
    load_state_dict(model, name, read_state_dict(state_dict_path), source=str(state_dict_path))
    save_weights(model, out_h5)
    return out_h5


def fetch_imagenet(name: str, out_h5=None) -> Path:
    """Download encoder ``name``'s ImageNet file (``imagenet.source_url``) and convert it."""
    if name not in ENCODERS:
        raise TfcovsegError(f"unknown encoder {name!r}; convertible: {', '.join(ENCODERS)}")
    url = source_url(name)
    out_h5 = Path(out_h5) if out_h5 else cache_path(name)
    out_h5.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_h5.parent) as folder:
        source = Path(folder) / Path(urllib.parse.urlparse(url).path).name
        try:
            urllib.request.urlretrieve(url, source)
        except (urllib.error.URLError, OSError) as err:
            raise TfcovsegError(f"could not download {url} ({err}); download it elsewhere and run "
                                f"`python -m tfcovseg.bench.backbones.convert {name} FILE`") from None
        return convert_imagenet(name, source, out_h5)


def convert_or_fetch(name: str, state_dict_path=None, out_h5=None) -> Path:
    """Convert a given PyTorch file, or download the pinned one first when none is given."""
    if state_dict_path:
        return convert_imagenet(name, state_dict_path, out_h5)
    return fetch_imagenet(name, out_h5)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tfcovseg.bench.backbones.convert",
        description="Convert an extra encoder's PyTorch ImageNet weights to the Keras cache file.")
    parser.add_argument("name", help=f"one of {', '.join(ENCODERS)}")
    parser.add_argument("state_dict", nargs="?", help="a .safetensors/.pth file (default: download)")
    parser.add_argument("--out", help="the .h5 to write (default: the cache file)")
    args = parser.parse_args(argv)
    try:
        out = convert_or_fetch(args.name, args.state_dict, args.out)
    except TfcovsegError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
