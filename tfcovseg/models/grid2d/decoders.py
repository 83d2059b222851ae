"""segmentation_models_pytorch's Unet, Linknet, FPN and PSPNet decoders and heads, in Keras.

The decoders of smp 0.6.0 at the arguments the paper's Table 1 lists (smp's defaults; 0.1.0,
the authors' version, computes the same: GRID2D.md section 2). Each takes what smp's encoder
returns (``Encoder.features``: strides 1, 2, ..., 32; the first is not decoded) and names every
layer by its smp module path with dots as underscores (``encoder.layers.layer_name``:
``decoder.blocks.0.conv1.0`` -> ``decoder_blocks_0_conv1_0``), the rule
``tfcovseg.models.grid2d.convert`` maps weights by; a step that is no module is named after its
block plus a word (``decoder.blocks.0.up``).

PyTorch's conventions throughout: BatchNorm momentum 0.1 (Keras 0.9) and eps 1e-5, GroupNorm
eps 1e-5, symmetric padding, nearest x2 = ``UpSampling2D``, bilinear with ``align_corners=True``
(``layers2d``), ``Dropout2d`` = ``SpatialDropout2D``.
"""

import tensorflow as tf

from tfcovseg.models.grid2d.encoders.layers import add, batch_norm, concat, conv2d, layer_name, relu
from tfcovseg.models.grid2d.layers2d import (
    AdaptiveAveragePooling2D,
    BilinearResizeLike,
    BilinearUpsampling2D,
)

layers = tf.keras.layers

# smp 0.6.0 defaults = the paper's Table 1
UNET_CHANNELS = (256, 128, 64, 32, 16)  # Unet decoder_channels
LINKNET_PREFINAL_CHANNELS = 32  # Linknet prefinal_channels
FPN_PYRAMID_CHANNELS = 256  # FPN decoder_pyramid_channels
FPN_SEGMENTATION_CHANNELS = 128  # FPN decoder_segmentation_channels
FPN_UPSAMPLINGS = (3, 2, 1, 0)  # FPNDecoder: segmentation branches of p5, p4, p3, p2
FPN_GROUPS = 32  # Conv3x3GNReLU: nn.GroupNorm(32, channels)
GROUP_NORM_EPS = 1e-5  # nn.GroupNorm default
FPN_DROPOUT = 0.2  # FPN decoder_dropout
PSP_BINS = (1, 2, 3, 6)  # PSPModule sizes
PSP_OUT_CHANNELS = 512  # PSPNet psp_out_channels
PSP_DROPOUT = 0.2  # PSPNet psp_dropout
LINKNET_BOTTLENECK = 4  # Linknet DecoderBlock: in_channels // 4 inside the block
TRANSPOSED_KERNEL, TRANSPOSED_PADDING = 4, 1  # Linknet TransposeX2: ConvTranspose2d(k4, s2, p1)


def conv_relu(x, filters, kernel, path, norm=True):
    """smp's ``Conv2dReLU`` at ``path``: conv ``.0`` (bias only without BN), BN ``.1``, ReLU ``.2``."""
    x = conv2d(x, filters, kernel, f"{path}.0", padding=kernel // 2, use_bias=not norm)
    if norm:
        x = batch_norm(x, f"{path}.1")
    return relu(x, f"{path}.2")


def unet_decoder(features, center: bool):
    """smp ``UnetDecoder``; ``center``: the two Conv2dReLU smp adds after VGG encoders."""
    x, *skips = reversed(features[1:])
    if center:
        width = x.shape[-1]
        x = conv_relu(conv_relu(x, width, 3, "decoder.center.0"), width, 3, "decoder.center.1")
    for index, width in enumerate(UNET_CHANNELS):
        path = f"decoder.blocks.{index}"
        x = layers.UpSampling2D(2, name=layer_name(f"{path}.up"))(x)
        if index < len(skips):
            x = concat([x, skips[index]], f"{path}.concat")
        x = conv_relu(conv_relu(x, width, 3, f"{path}.conv1"), width, 3, f"{path}.conv2")
    return x


def linknet_decoder(features):
    """smp ``LinknetDecoder``: each block 1x1 -> transposed conv x2 -> 1x1, plus the skip."""
    x, *skips = reversed(features[1:])
    for index, width in enumerate([s.shape[-1] for s in skips] + [LINKNET_PREFINAL_CHANNELS]):
        path = f"decoder.blocks.{index}"
        inner = x.shape[-1] // LINKNET_BOTTLENECK
        x = conv_relu(x, inner, 1, f"{path}.block.0")
        x = _transposed_x2(x, inner, f"{path}.block.1")
        x = conv_relu(x, width, 1, f"{path}.block.2")
        if index < len(skips):
            x = add([x, skips[index]], f"{path}.add")
    return x


def fpn_decoder(features):
    """smp ``FPNDecoder``: pyramid on strides 32..4, GroupNorm branches summed, Dropout2d."""
    c2, c3, c4, c5 = features[-4:]
    pyramid = [conv2d(c5, FPN_PYRAMID_CHANNELS, 1, "decoder.p5", use_bias=True)]
    for level, skip in zip((4, 3, 2), (c4, c3, c2)):
        path = f"decoder.p{level}"
        up = layers.UpSampling2D(2, name=layer_name(f"{path}.up"))(pyramid[-1])
        lateral = conv2d(skip, FPN_PYRAMID_CHANNELS, 1, f"{path}.skip_conv", use_bias=True)
        pyramid.append(add([up, lateral], f"{path}.add"))
    branches = [_segmentation_block(p, upsamplings, f"decoder.seg_blocks.{index}")
                for index, (p, upsamplings) in enumerate(zip(pyramid, FPN_UPSAMPLINGS))]
    x = add(branches, "decoder.merge")
    return layers.SpatialDropout2D(FPN_DROPOUT, name=layer_name("decoder.dropout"))(x)


def psp_decoder(features):
    """smp ``PSPDecoder`` on the deepest feature: pooled branches, concat, 1x1 to 512, Dropout2d."""
    x = features[-1]
    width = x.shape[-1] // len(PSP_BINS)
    branches = []
    for index, bins in enumerate(PSP_BINS):
        path = f"decoder.psp.blocks.{index}.pool"
        y = AdaptiveAveragePooling2D(bins, name=layer_name(f"{path}.0"))(x)
        y = conv_relu(y, width, 1, f"{path}.1", norm=bins > 1)  # smp: no BN on 1 x 1
        branches.append(BilinearResizeLike(name=layer_name(f"{path}.up"))([y, x]))
    x = concat([*branches, x], "decoder.psp.concat")
    x = conv_relu(x, PSP_OUT_CHANNELS, 1, "decoder.conv")
    return layers.SpatialDropout2D(PSP_DROPOUT, name=layer_name("decoder.dropout"))(x)


def segmentation_head(x, kernel: int, upsampling: int = 1, classes: int = 1):
    """smp ``SegmentationHead``: conv with bias, bilinear upsampling, sigmoid in float32."""
    x = conv2d(x, classes, kernel, "segmentation_head.0", padding=kernel // 2, use_bias=True)
    if upsampling > 1:
        x = BilinearUpsampling2D(upsampling, name=layer_name("segmentation_head.1"))(x)
    return layers.Activation("sigmoid", dtype="float32", name=layer_name("segmentation_head.2"))(x)


def _transposed_x2(x, filters, path):
    """smp ``TransposeX2``: ConvTranspose2d(k4, s2, p1, bias) as a valid transposed convolution
    cropped by PyTorch's padding, then BN and ReLU."""
    x = layers.Conv2DTranspose(filters, TRANSPOSED_KERNEL, strides=2, padding="valid",
                               name=layer_name(f"{path}.0"))(x)
    x = layers.Cropping2D(TRANSPOSED_PADDING, name=layer_name(f"{path}.0.crop"))(x)
    return relu(batch_norm(x, f"{path}.1"), f"{path}.2")


def _segmentation_block(x, upsamplings: int, path):
    """smp ``SegmentationBlock``: Conv3x3GNReLU blocks, each upsampling x2 (p2's: one, none)."""
    for index in range(max(upsamplings, 1)):
        block = f"{path}.block.{index}"
        x = conv2d(x, FPN_SEGMENTATION_CHANNELS, 3, f"{block}.block.0", padding=1)
        x = layers.GroupNormalization(FPN_GROUPS, epsilon=GROUP_NORM_EPS,
                                      name=layer_name(f"{block}.block.1"))(x)
        x = relu(x, f"{block}.block.2")
        if upsamplings:
            x = BilinearUpsampling2D(2, name=layer_name(f"{block}.up"))(x)
    return x
