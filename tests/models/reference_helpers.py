"""Helpers for tests that compare with PyTorch (import only inside reference tests)."""


def randomise_batch_norm(module, seed=0):
    """Non-trivial BN parameters and running statistics, so eval mode really uses them."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, torch.nn.BatchNorm3d):
                for tensor, (low, high) in ((layer.running_mean, (-0.5, 0.5)), (layer.running_var, (0.5, 2.0)),
                                            (layer.weight, (0.5, 1.5)), (layer.bias, (-0.2, 0.2))):
                    tensor.copy_(torch.rand(tensor.shape, generator=generator) * (high - low) + low)
    return module.eval()


def torch_input(x_ndhwc, channels):
    """A [B, D, H, W, 1] numpy volume as a [B, channels, D, H, W] torch tensor (grey repeated)."""
    import torch

    return torch.from_numpy(x_ndhwc.transpose(0, 4, 1, 2, 3).copy()).repeat(1, channels, 1, 1, 1)


def channels_last(tensor):
    return tensor.detach().numpy().transpose(0, 2, 3, 4, 1)
