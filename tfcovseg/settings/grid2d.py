"""Settings of the 2D grid's encoders where the library versions the authors could have had differ
(GRID2D.md section 2). The encoders themselves live in ``tfcovseg.models.grid2d.encoders``.

Defaults: the authors' most likely environment. Their Docker image (PyTorch 1.6.0, released end of
July 2020) installed ``segmentation-models-pytorch==0.1.0`` and ``efficientnet-pytorch>=0.5.1``;
PyPI had efficientnet-pytorch 0.6.3 (2020-03-01) until 0.7.0 came out on 2020-08-26, two weeks
before the paper-era commit (2020-09-10) that already holds the results of all 600 models. A
grid of that size trained in those two weeks is unlikely, so 0.6.3 is the default.
"""

from typing import Literal, get_args

from tfcovseg.config import frozen_settings

# How EfficientNet's convolutions pad (efficientnet_pytorch's Conv2dStaticSamePadding, computed
# from the model's native image size: 224 for b0 ... 528 for b6):
#   tf_same        0.6.3: TensorFlow "SAME" for the native size of the *input image*, used by every
#                  layer: a stride-2 convolution pads (0, 1) with kernel 3, (1, 2) with kernel 5,
#                  whatever the size it sees (= Keras/TensorFlow "same" when that size is even,
#                  e.g. at 512 or 64 pixels).
#   symmetric      0.7.0: per-layer sizes, but the total split as ceil/ceil: kernel // 2 on each
#                  side, as a PyTorch ``padding=k // 2``.
#   native_static  0.7.1 (vendored by smp 0.6.0, the parity reference): TensorFlow "SAME" for each
#                  layer's own size at the native image size, so odd sizes (b1 at 15, b2 at 65 ...)
#                  pad symmetrically and even ones as tf_same.
EfficientnetPadding = Literal["tf_same", "symmetric", "native_static"]
# Which tensor feeds Xception's block12 at depth 5: smp 0.1.0 (the released models) passed
# block10's output, block11 feeding only the stride-16 feature; smp 0.1.1 fixed it to block11's.
XceptionForward = Literal["smp_0.1.0", "fixed"]


@frozen_settings
class Encoders:
    efficientnet_padding: EfficientnetPadding = "tf_same"  # efficientnet-pytorch 0.6.3
    xception_forward: XceptionForward = "smp_0.1.0"  # segmentation-models-pytorch 0.1.0

    def __post_init__(self):
        for name, hint in (("efficientnet_padding", EfficientnetPadding),
                           ("xception_forward", XceptionForward)):
            if getattr(self, name) not in get_args(hint):
                raise ValueError(f"{name} is {getattr(self, name)!r}; allowed values: "
                                 f"{', '.join(repr(a) for a in get_args(hint))}")
