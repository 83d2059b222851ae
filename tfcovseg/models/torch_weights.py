"""Reading PyTorch state_dicts safely and assigning them to Keras variables by a name map.

A state_dict is read with ``torch.load(..., weights_only=True)`` (tensors only, never arbitrary
pickled objects; needs the ``convert`` extra) or from ``.safetensors``. Converters build a list
of ``(torch_key, keras_variable, layout)`` and ``assign`` checks every key and shape before it
changes anything, failing with the full list of missing, unexpected and mis-shaped keys.
"""

from pathlib import Path

import numpy as np

from tfcovseg.errors import WeightsError

# How a PyTorch tensor becomes a Keras one.
LAYOUTS = {
    "same": lambda a: a,
    # Conv3d (out, in, kd, kh, kw) -> Conv3D (kd, kh, kw, in, out)
    "conv3d": lambda a: a.transpose(2, 3, 4, 1, 0),
    # ConvTranspose3d (in, out, kd, kh, kw) -> Conv3DTranspose (kd, kh, kw, out, in)
    "conv3d_transpose": lambda a: a.transpose(2, 3, 4, 1, 0),
    # Conv2d (out, in, kh, kw) -> Conv2D (kh, kw, in, out)
    "conv2d": lambda a: a.transpose(2, 3, 1, 0),
    # depthwise Conv2d (channels * multiplier, 1, kh, kw) -> DepthwiseConv2D (kh, kw, channels, 1)
    "depthwise2d": lambda a: a.transpose(2, 3, 0, 1),
    # Linear (out, in) -> Dense (in, out)
    "dense": lambda a: a.T,
}

# Buffers PyTorch keeps that Keras has no variable for.
IGNORED_SUFFIXES = ("num_batches_tracked",)


def read_state_dict(path) -> dict:
    """``{key: float32 ndarray}`` from a ``.pth``/``.pt`` or ``.safetensors`` file."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError("weights file not found", path)
    if path.suffix == ".safetensors":
        try:
            from safetensors.numpy import load_file
        except ImportError:
            raise WeightsError("reading .safetensors needs: pip install 'tfcovseg[convert]'", path) from None
        try:
            tensors = load_file(str(path))
        except Exception as err:  # safetensors raises its own untyped errors
            raise WeightsError(f"not a readable safetensors file ({one_line(err)})", path) from None
    else:
        try:
            import torch
        except ImportError:
            raise WeightsError("reading PyTorch files needs: pip install 'tfcovseg[convert]'", path) from None
        try:
            loaded = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises many types (UnpicklingError, RuntimeError, ...)
            raise WeightsError(f"not a readable PyTorch weights file ({one_line(err)})", path) from None
        if isinstance(loaded, dict) and "state_dict" in loaded and isinstance(loaded["state_dict"], dict):
            loaded = loaded["state_dict"]
        if isinstance(loaded, dict) and "model" in loaded and isinstance(loaded["model"], dict):
            loaded = loaded["model"]  # fastai's learn.save() layout
        if not isinstance(loaded, dict):
            raise WeightsError(f"expected a state_dict (a mapping of tensors), got {type(loaded).__name__}", path)
        tensors = {k: v.detach().cpu().float().numpy() for k, v in loaded.items() if hasattr(v, "detach")}
    return {k: np.asarray(v) for k, v in tensors.items() if not k.endswith(IGNORED_SUFFIXES)}


def one_line(err: Exception) -> str:
    """The error's text on one line (torch's messages span paragraphs; the CLI prints one line)."""
    return " ".join(str(err).split())


def strip_prefix(state_dict: dict, prefixes=("module.", "model.")) -> dict:
    """Remove wrapper prefixes (DataParallel's ``module.``) shared by every key."""
    for prefix in prefixes:
        if state_dict and all(k.startswith(prefix) for k in state_dict):
            state_dict = {k[len(prefix):]: v for k, v in state_dict.items()}
    return state_dict


def assign(pairs, state_dict: dict, source="state_dict", allow_unused=()) -> None:
    """Assign ``state_dict[torch_key]`` (in ``layout``) to each Keras variable of ``pairs``.

    Everything is checked first; on any problem nothing is assigned and the error lists all
    missing, unexpected and mis-shaped keys. Keys starting with one of ``allow_unused`` (a
    classifier head, say) may be present without a target.
    """
    missing, misshaped, values = [], [], []
    for key, variable, layout in pairs:
        if key not in state_dict:
            missing.append(key)
            continue
        value = LAYOUTS[layout](state_dict[key])
        if tuple(value.shape) != tuple(variable.shape):
            misshaped.append(f"{key}: {tuple(value.shape)} (after {layout}) vs Keras {variable.name} {tuple(variable.shape)}")
            continue
        values.append((variable, value))
    used = {key for key, _, _ in pairs}
    unexpected = sorted(k for k in state_dict if k not in used and not k.startswith(tuple(allow_unused)))
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
    if misshaped:
        problems.append(f"mis-shaped keys ({len(misshaped)}): {'; '.join(misshaped)}")
    if problems:
        raise WeightsError("weights do not fit the model: " + " | ".join(problems), source)
    for variable, value in values:
        variable.assign(value.astype(variable.dtype.as_numpy_dtype))
