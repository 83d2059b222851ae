"""faimed3d's DynamicUnet3D on torchvision's r3d_18, in PyTorch: the reference for tfcovseg.

Written from the layer table in PAPERS.md (section 1, "Code facts"), with the state_dict laid
out as faimed3d's (``layers.0.*`` encoder, ...), so tfcovseg's converter can be tested against it
and the Keras model's speed compared. Test and benchmark use only; needs torch + torchvision.

Paper era (``encoder_norm=True``): layers = [encoder, BN, ReLU, middle, 3 blocks, transposed
conv, resize, merge, ResBlock, final ConvLayer]; the later version drops BN and ReLU, so its
indices are two lower (``layers.1`` is the middle, ``layers.9`` the final ConvLayer).
"""

import sys

# triton (pulled in by torchvision via torch._dynamo) segfaults on import when TensorFlow is
# already loaded in the process; CPU-only torch works without it.
sys.modules.setdefault("triton", None)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402
from torch import nn  # noqa: E402

KINETICS_CHANNELS = 3


def conv_layer(ni, nf, ks=3, transpose=False, act=True, zero_bn=False):
    """fastai's ConvLayer: conv (padding (ks-1)//2, 0 if transposed, no bias) -> BN -> ReLU."""
    if transpose:
        conv = nn.ConvTranspose3d(ni, nf, ks, padding=0, bias=False)
    else:
        conv = nn.Conv3d(ni, nf, ks, padding=(ks - 1) // 2, bias=False)
    nn.init.kaiming_normal_(conv.weight)
    bn = nn.BatchNorm3d(nf)
    bn.bias.data.fill_(1e-3)
    bn.weight.data.fill_(0.0 if zero_bn else 1.0)
    return nn.Sequential(conv, bn, nn.ReLU()) if act else nn.Sequential(conv, bn)


def skip_norm(channels, kind):
    if kind == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    bn = nn.BatchNorm3d(channels)
    bn.bias.data.fill_(1e-3)
    return bn


class UnetBlock3D(nn.Module):
    def __init__(self, up_in_c, x_in_c, final_div=True, norm="batch"):
        super().__init__()
        self.up = conv_layer(up_in_c, up_in_c // 2, transpose=True)
        self.bn = skip_norm(x_in_c, norm)
        ni = up_in_c // 2 + x_in_c
        nf = ni if final_div else ni // 2
        self.conv1 = conv_layer(ni, nf)
        self.conv2 = conv_layer(nf, nf)
        self.relu = nn.ReLU()

    def forward(self, up_in, skip):
        up_out = self.up(up_in)
        if up_out.shape[-3:] != skip.shape[-3:]:
            up_out = F.interpolate(up_out, skip.shape[-3:], mode="nearest")
        x = self.relu(torch.cat([up_out, self.bn(skip)], dim=1))
        return self.conv2(self.conv1(x))


class ResBlock(nn.Module):
    """fastai's ResBlock(1, ni, ni): convpath of two ConvLayers (the second BatchZero, no act)."""

    def __init__(self, ni):
        super().__init__()
        self.convpath = nn.Sequential(conv_layer(ni, ni), conv_layer(ni, ni, act=False, zero_bn=True))
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.convpath(x) + x)


class DynamicUnet3D(nn.Module):
    def __init__(self, n_out=2, encoder_norm=True, summed=False, norm="batch"):
        super().__init__()
        r3d = torchvision.models.video.r3d_18(weights=None)
        encoder = nn.Sequential(r3d.stem, r3d.layer1, r3d.layer2, r3d.layer3, r3d.layer4)
        if summed:
            stem = encoder[0][0]
            one_channel = nn.Conv3d(1, 64, stem.kernel_size, stem.stride, stem.padding, bias=False)
            one_channel.weight.data = stem.weight.data.sum(dim=1, keepdim=True)
            encoder[0][0] = one_channel
        self.in_channels = 1 if summed else KINETICS_CHANNELS
        middle = nn.Sequential(conv_layer(512, 1024), conv_layer(1024, 512))
        layers = [encoder]
        if encoder_norm:
            bridge = nn.BatchNorm3d(512)
            bridge.bias.data.fill_(1e-3)
            layers += [bridge, nn.ReLU()]
        layers += [
            middle,
            UnetBlock3D(512, 256, norm=norm),
            UnetBlock3D(512, 128, norm=norm),
            UnetBlock3D(384, 64, final_div=False, norm=norm),
            nn.ConvTranspose3d(128, 128, 3),
            nn.Identity(),  # ResizeToOrig: no parameters, done in forward
            nn.Identity(),  # MergeLayer(dense=True): no parameters, done in forward
        ]
        ni = 128 + self.in_channels
        layers += [ResBlock(ni), conv_layer(ni, n_out, ks=1, act=False)]
        self.layers = nn.ModuleList(layers)
        self.encoder_norm = encoder_norm

    def forward(self, x):
        """``x``: [B, C, D, H, W] with C = 3 (tripled grey) or 1 (summed stem)."""
        encoder = self.layers[0]
        skips, h = [], x
        for stage in encoder:
            h = stage(h)
            skips.append(h)
        rest = list(self.layers[1:])
        if self.encoder_norm:
            bridge_bn, bridge_relu, *rest = rest
            h = bridge_relu(bridge_bn(h))
        middle, block1, block2, block3, up, _resize, _merge, resblock, final = rest
        h = middle(h)
        for block, skip in zip((block1, block2, block3), (skips[3], skips[2], skips[1])):
            h = block(h, skip)
        h = F.interpolate(up(h), x.shape[-3:], mode="nearest")
        h = torch.cat([h, x], dim=1)
        return final(resblock(h))


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
