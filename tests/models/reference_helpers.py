"""Helpers for tests that compare with PyTorch (torch is imported only by the helpers that use it)."""

import numpy as np

# uniform ranges of the normalisation tensors randomise_batch_norm draws
NORM_RANGES = {"running_mean": (-0.5, 0.5), "running_var": (0.5, 2.0), "weight": (0.5, 1.5), "bias": (-0.2, 0.2)}


def randomise_batch_norm(module, seed=0):
    """Non-trivial BN parameters and running statistics, so eval mode really uses them.

    Affine InstanceNorm3d layers get random parameters too (they have no running statistics).
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, (torch.nn.BatchNorm3d, torch.nn.InstanceNorm3d)):
                for name, (low, high) in NORM_RANGES.items():
                    tensor = getattr(layer, name)
                    if tensor is not None:
                        tensor.copy_(torch.rand(tensor.shape, generator=generator) * (high - low) + low)
    return module.eval()


def torch_input(x_ndhwc, channels):
    """A [B, D, H, W, 1] numpy volume as a [B, channels, D, H, W] torch tensor (grey repeated)."""
    import torch

    return torch.from_numpy(x_ndhwc.transpose(0, 4, 1, 2, 3).copy()).repeat(1, channels, 1, 1, 1)


def channels_last(tensor):
    return tensor.detach().numpy().transpose(0, 2, 3, 4, 1)


def trainable_count(model):
    """PyTorch's parameter count: Keras also counts BN moving statistics, which torch keeps as buffers."""
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)
