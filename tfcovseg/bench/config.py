"""The bench config: which cells, which data, and the paper's training and test settings.

Defaults reproduce Bizopoulos et al. (PAPERS.md section 2); where the authors' code differs
from the paper text (Dice loss form, metric definitions, 100 epochs in ``--full``), the
code's variant is an option and the paper is the default.
"""

import dataclasses
from typing import Literal

from tfcovseg.config import config_path, load_config

ARCHS = ("unet", "linknet", "fpn", "pspnet")
INITS = ("random", "imagenet")
EXPERIMENTS = ("lungs", "lesions", "lesions_in_lungs")  # the paper's lungs, lesions 'A', 'B'

# The authors' encoder list (main.py, --full), in segmentation_models' names; vgg11, vgg13,
# densenet161, dpn68, dpn98, xception and inceptionv4 come from tfcovseg.bench.backbones.
PAPER_ENCODERS = (
    "vgg11", "vgg13", "vgg19",
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "densenet121", "densenet161", "densenet169", "densenet201",
    "resnext50", "dpn68", "dpn98", "mobilenetv2", "xception", "inceptionv4",
    "efficientnetb0", "efficientnetb1", "efficientnetb2", "efficientnetb3",
    "efficientnetb4", "efficientnetb5", "efficientnetb6",
)  # fmt: skip


@dataclasses.dataclass
class Phantoms:
    """Synthetic CT written into ``data.train`` when it holds no dataset yet (smoke runs)."""

    cases: int = 4
    seed: int = 0
    shape: tuple[int, int, int] = (8, 64, 64)
    spacing: tuple[float, float, float] = (5.0, 2.5, 2.5)


@dataclasses.dataclass
class BenchData:
    train: str = "data/medseg"  # prepared MedSeg: one case per slice, medseg_000..099
    test: str | None = "data/radiopaedia"  # prepared Radiopaedia volumes: every slice is tested
    validation_cases: int = 20  # the last N training cases (sorted ids): the paper's 80/20
    test_cases: int = 0  # with test: null, the last N cases of train are held out as test
    phantoms: Phantoms | None = None


@dataclasses.dataclass
class Grid:
    archs: tuple[Literal["unet", "linknet", "fpn", "pspnet"], ...] = ARCHS
    encoders: tuple[str, ...] = PAPER_ENCODERS
    inits: tuple[Literal["random", "imagenet"], ...] = INITS
    experiments: tuple[Literal["lungs", "lesions", "lesions_in_lungs"], ...] = EXPERIMENTS


@dataclasses.dataclass
class Architectures:
    """The paper's Table 1 (segmentation_models keyword arguments in models2d)."""

    unet_decoder_filters: tuple[int, ...] = (256, 128, 64, 32, 16)
    unet_decoder_batchnorm: bool = True
    linknet_decoder_batchnorm: bool = True
    linknet_decoder_block: Literal["transpose", "upsampling"] = "transpose"  # smp: transposed conv
    linknet_final_filters: int = 32  # smp's prefinal_channels (segmentation_models' default: 16)
    fpn_pyramid_filters: int = 256  # segmentation_models sets segmentation filters to half: 128
    fpn_aggregation: Literal["sum", "concat"] = "sum"
    fpn_dropout: float = 0.2
    fpn_batchnorm: bool = False
    pspnet_downsample_factor: Literal[4, 8, 16] = 8  # encoder depth 3 = output stride 8
    pspnet_filters: int = 512
    pspnet_dropout: float = 0.2
    pspnet_batchnorm: bool = True


@dataclasses.dataclass
class Training:
    epochs: int = 200  # the authors' code used 100 in its --full run; the paper says 200
    batch_size: int = 2
    learning_rate: float = 1e-3
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    # paper: 1 - 2 sum(yp) / (sum y^2 + sum p^2 + 1e-5); authors_code: smp.utils DiceLoss
    # (1 - (2 sum(yp) + 1) / (sum y + sum p + 1))
    loss: Literal["paper", "authors_code"] = "paper"
    seed: int = 0
    precision: Literal["float32", "mixed_bfloat16", "mixed_float16"] = "float32"


@dataclasses.dataclass
class Evaluation:
    threshold: float = 0.5
    eps: float = 1e-5  # the paper's eps; the authors' code used 1e-6
    # paper: all three metrics are 1 when TP + FP = 0; authors_code: the code's swapped FP/FN
    # names (the rule fires on an empty true mask, specificity = TN / (TN + FN))
    convention: Literal["paper", "authors_code"] = "paper"
    figure_case: int = 0  # test case (sorted ids) shown in Fig. 3 and Fig. 7
    figure_slice: int = 12  # the authors' code shows slice 12 of the first test volume
    volume_encoder: str = "resnet18"  # random-init cells of this encoder keep a test volume (Fig. 7)


@dataclasses.dataclass
class BenchConfig:
    name: str = "paper"
    out: str = "bench_out/paper"
    data: BenchData = dataclasses.field(default_factory=BenchData)
    pipeline: dict = dataclasses.field(default_factory=dict)  # tfcovseg.data.pipeline2d.Pipeline2D
    grid: Grid = dataclasses.field(default_factory=Grid)
    architectures: Architectures = dataclasses.field(default_factory=Architectures)
    training: Training = dataclasses.field(default_factory=Training)
    evaluation: Evaluation = dataclasses.field(default_factory=Evaluation)


def load_bench_config(name_or_path, data: str | None = None, out: str | None = None) -> BenchConfig:
    """A bench config by name or path; ``data`` is ``TRAIN[,TEST]`` folders, ``out`` the bench folder."""
    overrides = []
    if data:
        train, _, test = data.partition(",")
        overrides.append(f"data.train={train}")
        if test:
            overrides.append(f"data.test={test}")
    if out:
        overrides.append(f"out={out}")
    return load_config(BenchConfig, config_path(name_or_path), overrides)
