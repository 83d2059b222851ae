"""Settings of ``tfcovseg bench``: which cells, which data, and the paper's training and test.

Defaults reproduce Bizopoulos et al. (PAPERS.md section 2); where the authors' code differs
from the paper text (Dice loss form, metric definitions, 100 epochs in ``--full``), the
code's variant is an option and the paper is the default.
"""

import dataclasses
from typing import Literal, get_args

from tfcovseg.config import bounded, frozen_settings
from tfcovseg.settings.data import EXPERIMENTS, Experiment, Pipeline2D
from tfcovseg.settings.grid2d import Encoders
from tfcovseg.settings.phantoms import Phantoms

Arch = Literal["unet", "linknet", "fpn", "pspnet"]
ARCHS = get_args(Arch)
Init = Literal["random", "imagenet"]
INITS = get_args(Init)
DiceLossForm = Literal["paper", "paper_era_code", "later_code"]  # Training.loss
GridPrecision = Literal["float32", "mixed_bfloat16", "mixed_float16"]
# paper: segmentation_models_pytorch's networks as the authors trained them
# (tfcovseg.models.grid2d.networks); segmentation_models: qubvel's Keras networks
Networks = Literal["paper", "segmentation_models"]

# The authors' encoder list (main.py, --full), in segmentation_models' names (the grid's and the
# configs' names); vgg11, vgg13, densenet161, dpn68, dpn98, xception and inceptionv4 come from
# tfcovseg.models.grid2d.encoders.
PAPER_ENCODERS = (
    "vgg11", "vgg13", "vgg19",
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "densenet121", "densenet161", "densenet169", "densenet201",
    "resnext50", "dpn68", "dpn98", "mobilenetv2", "xception", "inceptionv4",
    "efficientnetb0", "efficientnetb1", "efficientnetb2", "efficientnetb3",
    "efficientnetb4", "efficientnetb5", "efficientnetb6",
)  # fmt: skip
# segmentation_models name -> segmentation_models_pytorch name, where they differ (the names of
# the authors' code and released files); every other encoder has one name in both libraries
SMP_ENCODER_NAMES = {
    "resnext50": "resnext50_32x4d",
    "mobilenetv2": "mobilenet_v2",
    **{f"efficientnetb{i}": f"efficientnet-b{i}" for i in range(7)},
}


def smp_encoder_name(encoder: str) -> str:
    """The segmentation_models_pytorch name of a grid encoder (``mobilenetv2`` -> ``mobilenet_v2``)."""
    return SMP_ENCODER_NAMES.get(encoder, encoder)


def grid_encoder_name(smp_name: str) -> str:
    """The grid's (segmentation_models') name of a segmentation_models_pytorch encoder."""
    return {smp: grid for grid, smp in SMP_ENCODER_NAMES.items()}.get(smp_name, smp_name)


@frozen_settings
class BenchData:
    train: str = "data/medseg"  # prepared MedSeg: one case per slice, medseg_000..099
    test: str | None = "data/radiopaedia"  # prepared Radiopaedia volumes: every slice is tested
    validation_cases: int = bounded(20, low=1)  # the last N training cases (sorted ids): 80/20
    test_cases: int = bounded(0, low=0)  # with test: null, the last N cases of train are held out
    phantoms: Phantoms | None = None  # written into train when it holds no dataset (smoke runs)


@frozen_settings
class Grid:
    archs: tuple[Arch, ...] = ARCHS
    encoders: tuple[str, ...] = PAPER_ENCODERS
    inits: tuple[Init, ...] = INITS
    experiments: tuple[Experiment, ...] = EXPERIMENTS


@frozen_settings
class Architectures:
    """Which family of networks, and the paper's Table 1.

    The ``paper`` networks are segmentation_models_pytorch's at its defaults, which are Table 1;
    the other fields are segmentation_models' keyword arguments (models2d) that come closest to
    them, so with ``networks: paper`` they must keep their defaults.
    """

    networks: Networks = "paper"
    # paper networks: which library versions' encoder behaviour (GRID2D.md section 2)
    encoders: Encoders = dataclasses.field(default_factory=Encoders)
    unet_decoder_filters: tuple[int, ...] = bounded((256, 128, 64, 32, 16), low=1)
    unet_decoder_batchnorm: bool = True
    linknet_decoder_batchnorm: bool = True
    linknet_decoder_block: Literal["transpose", "upsampling"] = "transpose"  # smp: transposed conv
    linknet_final_filters: int = bounded(32, low=1)  # smp's prefinal_channels (sm's default: 16)
    fpn_pyramid_filters: int = bounded(256, low=1)  # sm sets segmentation filters to half: 128
    fpn_aggregation: Literal["sum", "concat"] = "sum"
    fpn_dropout: float = bounded(0.2, low=0.0, high=1.0, high_open=True)
    fpn_batchnorm: bool = False
    pspnet_downsample_factor: Literal[4, 8, 16] = 8  # encoder depth 3 = output stride 8
    pspnet_filters: int = bounded(512, low=1)
    pspnet_dropout: float = bounded(0.2, low=0.0, high=1.0, high_open=True)
    pspnet_batchnorm: bool = True

    def __post_init__(self):
        if self.networks == "paper":
            table1 = Architectures(networks="segmentation_models")
            changed = [f"{f.name} is {getattr(self, f.name)!r}" for f in dataclasses.fields(self)
                       if getattr(self, f.name) != getattr(table1, f.name) and f.name != "networks"]
            if changed:
                raise ValueError(
                    f"{', '.join(changed)}: these configure networks: segmentation_models; "
                    f"networks: paper builds smp's networks at Table 1's settings (their defaults)")


@frozen_settings
class Training:
    epochs: int = bounded(200, low=1)  # the authors' code used 100 in its --full run; paper: 200
    batch_size: int = bounded(2, low=1)
    learning_rate: float = bounded(1e-3, low=0.0, low_open=True)
    beta_1: float = bounded(0.9, low=0.0, high=1.0, high_open=True)
    beta_2: float = bounded(0.999, low=0.0, high=1.0, high_open=True)
    epsilon: float = bounded(1e-8, low=0.0, low_open=True)
    # paper: 1 - 2 sum(yp) / (sum y^2 + sum p^2 + 1e-5) over the batch; paper_era_code: the
    # authors' code that trained the released models, per image 1 - 2 sum(yp) / (sum y + sum p
    # + 1e-6) times "mask not empty", averaged; later_code: smp.utils DiceLoss over the batch,
    # 1 - (2 sum(yp) + 1) / (sum y + sum p + 1)
    loss: DiceLossForm = "paper"
    seed: int = 0
    # auto: mixed_bfloat16 on CPUs with AMX, mixed_float16 on GPUs, float32 otherwise
    # (tfcovseg.train.precision, as training resolves it)
    precision: Literal["auto", GridPrecision] = "auto"


@frozen_settings
class Evaluation:
    threshold: float = bounded(0.5, low=0.0, high=1.0)
    eps: float = bounded(1e-5, low=0.0)  # the paper's eps; the authors' code used 1e-6
    # paper: all three metrics are 1 when TP + FP = 0; authors_code: the code's swapped FP/FN
    # names (the rule fires on an empty true mask, specificity = TN / (TN + FN))
    convention: Literal["paper", "authors_code"] = "paper"
    figure_case: int = bounded(0, low=0)  # test case (sorted ids) shown in Fig. 3 and Fig. 7
    figure_slice: int = bounded(12, low=0)  # the authors' code shows slice 12 of test volume 1
    volume_encoder: str = "resnet18"  # random-init cells of this encoder keep a test volume (Fig. 7)


@frozen_settings
class BenchConfig:
    name: str = "paper"
    out: str = "bench_out/paper"
    data: BenchData = dataclasses.field(default_factory=BenchData)
    pipeline: Pipeline2D = dataclasses.field(default_factory=Pipeline2D)
    grid: Grid = dataclasses.field(default_factory=Grid)
    architectures: Architectures = dataclasses.field(default_factory=Architectures)
    training: Training = dataclasses.field(default_factory=Training)
    evaluation: Evaluation = dataclasses.field(default_factory=Evaluation)
