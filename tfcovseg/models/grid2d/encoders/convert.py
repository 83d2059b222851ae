"""An encoder's PyTorch state_dict -> its Keras layers, and the grid encoders' ImageNet files.

The mapping is the naming rule of ``tfcovseg.models.grid2d.convert.load_state_dict``: the key
``encoder.layer1.0.conv1.weight`` belongs to the layer ``encoder_layer1_0_conv1``; every key and
shape is checked before anything changes. On top of it, an encoder's files: keys without smp's
``encoder.`` prefix (torchvision, Cadene, smp-hub), classifier keys, old key styles, and an RGB
first convolution for a grey model. Usage::

    python -m tfcovseg.models.grid2d.encoders.convert dpn68                    # download, convert
    python -m tfcovseg.models.grid2d.encoders.convert dpn68 model.safetensors  # a downloaded file
    python -m tfcovseg.models.grid2d.encoders.convert dpn68 dpn68.pth --out dpn68.h5

The output defaults to the cache file that ``encoder_weights="imagenet"`` reads
(``tfcovseg.models.grid2d.encoders.imagenet.cache_path``). The smp-hub ``.safetensors`` sources need
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

from tfcovseg.errors import TfcovsegError
from tfcovseg.files import save_weights
from tfcovseg.models.grid2d.convert import load_state_dict, module_paths
from tfcovseg.models.grid2d.encoders import ENCODERS, get_encoder
from tfcovseg.models.grid2d.encoders.encoder import RGB, ROOT, first_conv, patch_first_conv
from tfcovseg.models.grid2d.encoders.imagenet import cache_path, source_url
from tfcovseg.models.torch_weights import read_state_dict, strip_prefix

WRAPPER_PREFIXES = ("module.", "model.")  # DataParallel, Lightning-style wrappers
TORCH_KERNEL_IN_AXIS = 1  # Conv2d weight (out, in, kh, kw)


def load_encoder_state_dict(model: tf.keras.Model, name: str, state_dict: dict,
                            source="state_dict") -> None:
    """Assign encoder ``name``'s PyTorch state_dict to ``model`` (``encoder_model`` or ``build``).

    Keys may carry smp's ``encoder.`` prefix or not (torchvision, Cadene, smp-hub files, smp's
    ``get_encoder``); classifier keys are ignored. An RGB first convolution feeding a model
    with other input channels is adapted as smp adapts its ImageNet weights (``patch_first_conv``).
    """
    encoder = get_encoder(name)
    state_dict = strip_prefix(state_dict, WRAPPER_PREFIXES)
    if not all(key.startswith(f"{ROOT}.") for key in state_dict):
        state_dict = {f"{ROOT}.{key}": value for key, value in state_dict.items()}
    state_dict = encoder.torch_keys(state_dict)
    stem = first_conv(model)
    stem_key = f"{module_paths(state_dict, source).get(stem.name, stem.name)}.weight"
    in_channels = stem.kernel.shape[2]
    rgb_stem = stem_key in state_dict and state_dict[stem_key].shape[TORCH_KERNEL_IN_AXIS] == RGB
    if rgb_stem and in_channels != RGB:
        kernel = patch_first_conv(state_dict[stem_key], in_channels, axis=TORCH_KERNEL_IN_AXIS)
        state_dict = {**state_dict, stem_key: kernel}
    load_state_dict(model, state_dict, source,
                    allow_unused=tuple(f"{ROOT}.{prefix}" for prefix in encoder.classifier))


def convert_imagenet(name: str, state_dict_path, out_h5=None) -> Path:
    """Convert encoder ``name``'s PyTorch ImageNet weights to the Keras file the builder loads."""
    model = get_encoder(name).build(weights=None)
    out_h5 = Path(out_h5) if out_h5 else cache_path(name)
    load_encoder_state_dict(model, name, read_state_dict(state_dict_path), source=str(state_dict_path))
    save_weights(model, out_h5)
    return out_h5


def fetch_imagenet(name: str, out_h5=None) -> Path:
    """Download encoder ``name``'s ImageNet file (``imagenet.source_url``) and convert it."""
    get_encoder(name)  # an unknown name fails before the download
    url = source_url(name)
    out_h5 = Path(out_h5) if out_h5 else cache_path(name)
    out_h5.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_h5.parent) as folder:
        source = Path(folder) / Path(urllib.parse.urlparse(url).path).name
        try:
            urllib.request.urlretrieve(url, source)
        except (urllib.error.URLError, OSError) as err:
            raise TfcovsegError(f"could not download {url} ({err}); download it elsewhere and run "
                                f"`python -m tfcovseg.models.grid2d.encoders.convert {name} FILE`") from None
        return convert_imagenet(name, source, out_h5)


def convert_or_fetch(name: str, state_dict_path=None, out_h5=None) -> Path:
    """Convert a given PyTorch file, or download the pinned one first when none is given."""
    if state_dict_path:
        return convert_imagenet(name, state_dict_path, out_h5)
    return fetch_imagenet(name, out_h5)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tfcovseg.models.grid2d.encoders.convert",
        description="Convert a grid encoder's PyTorch ImageNet weights to the Keras cache file.")
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
