"""faimed3d's DynamicUnet3D on torchvision's r3d_18, in PyTorch: the reference for tfcovseg.

Written from the layer table in PAPERS.md (section 1, "Code facts"), with the modules named so
that ``state_dict()`` has exactly the keys faimed3d writes ("State_dict layouts";
tests/models/fixtures/faimed3d-state-dict-keys), so tfcovseg's converter can be tested against
it and the Keras model's speed compared. Test and benchmark use only; needs torch + torchvision.

``version="paper-era"`` (faimed3d 06ccb92, 226 keys): layers = [encoder (wrapped:
``layers.0.layers.k.layers.0``), BN + ReLU (``layers.1.bn``), middle, 3 blocks, transposed conv,
resize, merge, ResBlock, final ConvLayer (``layers.10``)]. ``version="later"`` (faimed3d 7287c68,
221 keys): 1-channel summed stem, encoder as a plain ``Sequential`` (``layers.0.k``), no BN +
ReLU, so ``layers.1`` is the middle and ``layers.9`` the final ConvLayer.
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
# What differs between the two faimed3d versions (PAPERS.md section 1).
VERSIONS = {
    "paper-era": {"summed": False, "wrapped_encoder": True, "encoder_norm": True},  # 06ccb92
    "later": {"summed": True, "wrapped_encoder": False, "encoder_norm": False},  # 7287c68
}
FASTAI_BN_BIAS = 1e-3


def batch_norm(channels, zero=False):
    """fastai's BatchNorm3d: weight 1 (0 for BatchZero), bias 1e-3."""
    bn = nn.BatchNorm3d(channels)
    bn.bias.data.fill_(FASTAI_BN_BIAS)
    bn.weight.data.fill_(0.0 if zero else 1.0)
    return bn


def conv_layer(ni, nf, ks=3, transpose=False, act=True, zero_bn=False):
    """fastai's ConvLayer: conv (padding (ks-1)//2, 0 if transposed, no bias) -> BN -> ReLU."""
    if transpose:
        conv = nn.ConvTranspose3d(ni, nf, ks, padding=0, bias=False)
    else:
        conv = nn.Conv3d(ni, nf, ks, padding=(ks - 1) // 2, bias=False)
    nn.init.kaiming_normal_(conv.weight)
    bn = batch_norm(nf, zero=zero_bn)
    return nn.Sequential(conv, bn, nn.ReLU()) if act else nn.Sequential(conv, bn)


def skip_norm(channels, kind):
    return nn.InstanceNorm3d(channels, affine=True) if kind == "instance" else batch_norm(channels)


class Layers(nn.Module):
    """Modules applied in turn and kept under ``.layers``, as the paper-era encoder is wrapped."""

    def __init__(self, *modules):
        super().__init__()
        self.layers = nn.ModuleList(modules)

    def __iter__(self):
        return iter(self.layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class BatchNormReLU(nn.Module):
    """The paper-era BatchNorm3d + ReLU between encoder and middle: one module (``bn``)."""

    def __init__(self, channels):
        super().__init__()
        self.bn = batch_norm(channels)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(x))


class UnetBlock3D(nn.Module):
    def __init__(self, up_in_c, x_in_c, final_div=True, norm="batch"):
        super().__init__()
        # the transposed ConvLayer sits one level down: up.0.0 (conv), up.0.1 (BN)
        self.up = nn.Sequential(conv_layer(up_in_c, up_in_c // 2, transpose=True))
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


def encoder(summed, wrapped):
    """r3d_18's stem and layer1..layer4; ``summed``: a 1-channel stem with the RGB kernels summed."""
    r3d = torchvision.models.video.r3d_18(weights=None)
    if summed:
        stem = r3d.stem[0]
        one_channel = nn.Conv3d(1, 64, stem.kernel_size, stem.stride, stem.padding, bias=False)
        one_channel.weight.data = stem.weight.data.sum(dim=1, keepdim=True)
        r3d.stem[0] = one_channel
    stages = (r3d.stem, r3d.layer1, r3d.layer2, r3d.layer3, r3d.layer4)
    return Layers(*(Layers(stage) for stage in stages)) if wrapped else nn.Sequential(*stages)


class DynamicUnet3D(nn.Module):
    def __init__(self, n_out=2, version="paper-era", norm="batch"):
        super().__init__()
        features = VERSIONS[version]
        self.in_channels = 1 if features["summed"] else KINETICS_CHANNELS
        self.encoder_norm = features["encoder_norm"]
        layers = [encoder(features["summed"], features["wrapped_encoder"])]
        if self.encoder_norm:
            layers.append(BatchNormReLU(512))
        layers += [
            nn.Sequential(conv_layer(512, 1024), conv_layer(1024, 512)),
            UnetBlock3D(512, 256, norm=norm),
            UnetBlock3D(512, 128, norm=norm),
            UnetBlock3D(384, 64, final_div=False, norm=norm),
            nn.Sequential(nn.Sequential(nn.ConvTranspose3d(128, 128, 3))),  # keys layers.<i>.0.0.*
            nn.Identity(),  # ResizeToOrig: no parameters, done in forward
            nn.Identity(),  # MergeLayer(dense=True): no parameters, done in forward
        ]
        ni = 128 + self.in_channels
        layers += [ResBlock(ni), conv_layer(ni, n_out, ks=1, act=False)]
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        """``x``: [B, C, D, H, W] with C = 3 (tripled grey, paper era) or 1 (summed stem, later)."""
        encoder_stages, *rest = self.layers
        skips, h = [], x
        for stage in encoder_stages:
            h = stage(h)
            skips.append(h)
        if self.encoder_norm:
            bridge, *rest = rest
            h = bridge(h)
        middle, block1, block2, block3, up, _resize, _merge, resblock, final = rest
        h = middle(h)
        for block, skip in zip((block1, block2, block3), (skips[3], skips[2], skips[1])):
            h = block(h, skip)
        h = F.interpolate(up(h), x.shape[-3:], mode="nearest")
        h = torch.cat([h, x], dim=1)
        return final(resblock(h))


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
