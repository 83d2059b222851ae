"""The training config: dataclasses whose defaults are Bressem et al.'s recipe.

YAML maps onto ``TrainConfig`` 1:1 (``tfcovseg.config``); ``configs/ricord_r3d18.yaml`` spells
the paper out and ``configs/demo.yaml`` shrinks it to minutes on a CPU. A stage is one input
size (progressive resizing); a phase is one ``fit_one_cycle`` session within a stage.
"""

import dataclasses
from typing import Literal

from tfcovseg.data.augment import Augment3D
from tfcovseg.data.intensity import Intensity
from tfcovseg.data.pipeline3d import Pipeline3D

PAPER_WEIGHT_DECAY = 1e-5  # Bressem et al., the unfrozen sessions
# The frozen session's weight decay is not in the paper (fastai's default would be 0.01);
# tfcovseg uses the paper's value of the other sessions. configs/ricord_r3d18.yaml spells it out.
FROZEN_WEIGHT_DECAY = PAPER_WEIGHT_DECAY


@dataclasses.dataclass
class Phase:
    """One one-cycle session: ``epochs`` at base learning rate ``lr``."""

    epochs: int
    lr: float
    weight_decay: float = PAPER_WEIGHT_DECAY
    freeze_encoder: bool = False  # fastai freeze(): encoder convs fixed, its BatchNorms train

    def __post_init__(self):
        if self.epochs < 1 or self.lr <= 0:
            raise ValueError(f"a phase needs epochs >= 1 and lr > 0, got {self.epochs}, {self.lr}")


@dataclasses.dataclass
class Stage:
    """One input size; starts from the previous stage's best weights."""

    name: str
    size: tuple[int, int, int]  # D, H, W the volumes are resized to (mode resize)
    batch_size: int
    phases: list[Phase]
    mode: Literal["resize", "patch"] = "resize"
    patch_size: tuple[int, int, int] = (32, 128, 128)  # mode patch

    def __post_init__(self):
        if self.batch_size < 1 or not self.phases:
            raise ValueError(f"stage {self.name!r} needs batch_size >= 1 and at least one phase")


def paper_stages() -> list:
    """Bressem et al.: 10 frozen epochs at 1e-2 and 200 at 1e-3 (18x112x112, batch 6), then
    200 epochs at 1e-4 (20x256x256, batch 1); weight decay 1e-5."""
    return [
        Stage("stage1", (18, 112, 112), 6, [Phase(10, 1e-2, FROZEN_WEIGHT_DECAY, freeze_encoder=True), Phase(200, 1e-3)]),
        Stage("stage2", (20, 256, 256), 1, [Phase(200, 1e-4)]),
    ]


@dataclasses.dataclass
class Synth:
    """Phantoms generated on the fly (``tfcovseg.io.phantoms``) when no dataset is given."""

    cases: int = 16
    seed: int = 0
    shape: tuple[int, int, int] = (32, 96, 96)
    spacing: tuple[float, float, float] = (5.0, 2.5, 2.5)
    cache_dir: str = "data/phantoms"  # one subfolder per setting; reused when present
    lesion_count: tuple[int, int] = (1, 6)  # lesions per case (every 4th case has none)
    lesion_radius: tuple[float, float] = (0.05, 0.2)  # in half fields of view: mild disease

    def __post_init__(self):
        if not 1 <= self.lesion_count[0] <= self.lesion_count[1]:
            raise ValueError(f"lesion_count must be [min, max] with 1 <= min <= max, got {self.lesion_count}")
        if not 0 < self.lesion_radius[0] <= self.lesion_radius[1]:
            raise ValueError(f"lesion_radius must be [min, max] with 0 < min <= max, got {self.lesion_radius}")


@dataclasses.dataclass
class DataConfig:
    dataset: str | None = None  # a prepared dataset folder (tfcovseg prepare)
    synth: Synth | None = None  # used when dataset is null
    tuning_fraction: float = 0.15  # random 85/15 train/tuning split
    split_seed: int = 0
    intensity: Intensity = dataclasses.field(default_factory=Intensity)
    augment: Augment3D = dataclasses.field(default_factory=Augment3D)
    lesion_fraction: float = 0.5  # mode patch: patches centred on a lesion
    patches_per_volume: int = 1  # mode patch
    cache: bool = True  # keep resized volumes in memory after the first epoch

    def __post_init__(self):
        if not 0.0 < self.tuning_fraction < 1.0:
            raise ValueError(f"tuning_fraction must be in (0, 1), got {self.tuning_fraction}")


@dataclasses.dataclass
class ModelConfig:
    """Keyword arguments of ``tfcovseg.models.unet3d`` (stored in run.json)."""

    classes: int = 2
    encoder_weights: str | None = None  # R3D-18 Kinetics weights from tfcovseg convert-weights
    skip_norm: Literal["batch", "instance"] = "batch"
    encoder_norm: bool = True
    input_channels: Literal["tripled", "summed"] = "tripled"
    lesion_prior: float | None = None  # start the logits at this foreground share (None: fastai's)
    width: float = 1.0  # channel multiplier; 1 is the paper's network (needed for Kinetics weights)


@dataclasses.dataclass
class LossConfig:
    dice: Literal["milletari", "foreground"] = "milletari"
    dice_weight: float = 1.0
    ce_weight: float = 1.0
    # faimed3d: 2I / (S + eps), a lesion-free item has a constant loss; "both": (2I + eps) / (S + eps)
    dice_eps: Literal["denominator", "both"] = "denominator"


@dataclasses.dataclass
class CheckpointConfig:
    """Which epoch's weights a one-cycle session keeps (fastai ``SaveModelCallback``)."""

    # "pooled": the authors' dice_score, hard lesion Dice pooled over each tuning batch, batches
    # averaged by size (a batch with nothing to score makes the epoch NaN, never the best);
    # "per_volume": mean of per-volume Dice (Ma et al.'s rule for empty volumes), which does not
    # depend on the batch size and is what evaluate and the paper's tables report.
    metric: Literal["pooled", "per_volume"] = "pooled"
    # "session": fastai, the best is reset at every fit and that fit's best reloaded at its end;
    # "stage": one best carried across the stage's sessions (the frozen one can win).
    best_of: Literal["session", "stage"] = "session"


@dataclasses.dataclass
class OptimizerConfig:
    # fastai's freeze()/unfreeze() clear Adam's moments and step count: the session after a
    # change of the encoder's freezing starts with a fresh optimizer. false: state carried over.
    reset_on_freeze_change: bool = True


@dataclasses.dataclass
class OneCycleConfig:
    """fastai ``fit_one_cycle`` defaults."""

    div: float = 25.0
    div_final: float = 1e5
    pct_start: float = 0.25
    moms: tuple[float, float, float] = (0.95, 0.85, 0.95)


@dataclasses.dataclass
class TrainConfig:
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    one_cycle: OneCycleConfig = dataclasses.field(default_factory=OneCycleConfig)
    checkpoint: CheckpointConfig = dataclasses.field(default_factory=CheckpointConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    stages: list[Stage] = dataclasses.field(default_factory=paper_stages)
    precision: Literal["auto", "float32", "mixed_bfloat16", "mixed_float16"] = "auto"
    strategy: Literal["auto", "default", "mirrored", "multiworker"] = "auto"
    seed: int = 0
    out: str | None = None  # run folder; default runs/<config name>-<UTC time>
    tensorboard: bool = True

    def __post_init__(self):
        if not self.stages:
            raise ValueError("stages must list at least one stage")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique, got {names}")


def pipeline_config(data: DataConfig, stage: Stage) -> Pipeline3D:
    """The data pipeline settings of one stage."""
    return Pipeline3D(
        mode=stage.mode,
        size=stage.size,
        patch_size=stage.patch_size,
        lesion_fraction=data.lesion_fraction,
        patches_per_volume=data.patches_per_volume,
        intensity=data.intensity,
        augment=data.augment,
        cache=data.cache,
    )
