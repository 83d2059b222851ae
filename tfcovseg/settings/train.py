"""Settings of ``tfcovseg train``: Bressem et al.'s recipe as the defaults.

YAML maps onto ``TrainConfig`` 1:1 (``tfcovseg.config``); ``configs/ricord_r3d18.yaml`` spells
the paper out and ``configs/demo.yaml`` shrinks it to minutes on a CPU. A stage is one input
size (progressive resizing); a phase is one ``fit_one_cycle`` session within a stage.
"""

import dataclasses
from typing import Literal, get_args

from tfcovseg.config import bounded, frozen_settings
from tfcovseg.settings.data import SPACING_MM, Augment3D, Intensity, Mode, Pipeline3D
from tfcovseg.settings.phantoms import Phantoms

Precision = Literal["auto", "float32", "mixed_bfloat16", "mixed_float16"]
PRECISIONS = get_args(Precision)
Strategy = Literal["auto", "default", "mirrored", "multiworker"]
STRATEGIES = get_args(Strategy)
SkipNorm = Literal["batch", "instance"]
InputChannels = Literal["tripled", "summed"]
DiceForm = Literal["milletari", "foreground"]
DiceEps = Literal["denominator", "both"]
CheckpointMetric = Literal["pooled", "per_volume"]
Split = Literal["train", "tuning"]  # the parts of a run's saved split
SPLITS = get_args(Split)

PAPER_WEIGHT_DECAY = 1e-5  # Bressem et al., the unfrozen sessions
# The frozen session's weight decay is not in the paper (fastai's default would be 0.01);
# tfcovseg uses the paper's value of the other sessions. configs/ricord_r3d18.yaml spells it out.
FROZEN_WEIGHT_DECAY = PAPER_WEIGHT_DECAY
POSITIVE = {"low": 0.0, "low_open": True}


@frozen_settings
class Phase:
    """One one-cycle session: ``epochs`` at base learning rate ``lr``."""

    epochs: int = bounded(low=1)
    lr: float = bounded(**POSITIVE)
    weight_decay: float = bounded(PAPER_WEIGHT_DECAY, low=0.0)
    freeze_encoder: bool = False  # fastai freeze(): encoder convs fixed, its BatchNorms train


@frozen_settings
class Stage:
    """One input size; starts from the previous stage's best weights."""

    name: str
    size: tuple[int, int, int] = bounded(low=1)  # D, H, W the volumes are resized to (resize)
    batch_size: int = bounded(low=1)
    phases: tuple[Phase, ...] = ()
    mode: Mode = "resize"
    patch_size: tuple[int, int, int] = bounded((32, 128, 128), low=1)  # mode patch

    def __post_init__(self):
        if not self.phases:
            raise ValueError(f"stage {self.name!r} needs at least one phase")


def paper_stages() -> tuple:
    """Bressem et al.: 10 frozen epochs at 1e-2 and 200 at 1e-3 (18x112x112, batch 6), then
    200 epochs at 1e-4 (20x256x256, batch 1); weight decay 1e-5."""
    return (
        Stage("stage1", (18, 112, 112), 6,
              (Phase(10, 1e-2, FROZEN_WEIGHT_DECAY, freeze_encoder=True), Phase(200, 1e-3))),
        Stage("stage2", (20, 256, 256), 1, (Phase(200, 1e-4),)),
    )


@frozen_settings
class DataConfig:
    dataset: str | None = None  # a prepared dataset folder (tfcovseg prepare)
    synth: Phantoms | None = None  # phantoms used when dataset is null
    phantoms_cache: str = "data/phantoms"  # one subfolder per phantom setting; reused
    tuning_fraction: float = bounded(0.15, low=0.0, high=1.0, low_open=True, high_open=True)
    split_seed: int = 0
    intensity: Intensity = dataclasses.field(default_factory=Intensity)
    augment: Augment3D = dataclasses.field(default_factory=Augment3D)
    lesion_fraction: float = bounded(0.5, low=0.0, high=1.0)  # mode patch: lesion-centred
    patches_per_volume: int = bounded(1, low=1)  # mode patch
    # mode patch: the voxel size (mm, D H W) training cases are resampled to and prediction
    # resamples inputs to; null: the median spacing of the training cases per axis (nnU-Net's
    # plan). Resize mode ignores it (the paper resizes whole volumes).
    target_spacing: tuple[float, float, float] | None = bounded(None, **SPACING_MM)
    cache: bool = True  # keep resized volumes in memory after the first epoch


@frozen_settings
class ModelConfig:
    """Keyword arguments of ``tfcovseg.models.unet3d`` (stored in run.json)."""

    classes: int = bounded(2, low=2)
    encoder_weights: str | None = None  # R3D-18 Kinetics weights from tfcovseg convert-weights
    skip_norm: SkipNorm = "batch"
    encoder_norm: bool = True
    input_channels: InputChannels = "tripled"
    # start the logits at this foreground share (None: fastai's initialisation)
    lesion_prior: float | None = bounded(None, low=0.0, high=1.0, low_open=True, high_open=True)
    width: float = bounded(1.0, **POSITIVE)  # channel multiplier; 1 is the paper's network

    def __post_init__(self):
        if self.encoder_weights is not None and self.width != 1:
            raise ValueError(f"width must be 1 with encoder_weights (Kinetics weights fit the "
                             f"paper's network only), got {self.width}")


@frozen_settings
class LossConfig:
    dice: DiceForm = "milletari"
    dice_weight: float = bounded(1.0, low=0.0)
    ce_weight: float = bounded(1.0, low=0.0)
    # faimed3d: 2I / (S + eps), a lesion-free item has a constant loss; "both": (2I + eps) / (S + eps)
    dice_eps: DiceEps = "denominator"


@frozen_settings
class CheckpointConfig:
    """Which epoch's weights a one-cycle session keeps (fastai ``SaveModelCallback``)."""

    # "pooled": the authors' dice_score, hard lesion Dice pooled over each tuning batch, batches
    # averaged by size (a batch with nothing to score makes the epoch NaN, never the best);
    # "per_volume": mean of per-volume Dice (Ma et al.'s rule for empty volumes), which does not
    # depend on the batch size and is what evaluate and the paper's tables report.
    metric: CheckpointMetric = "pooled"
    # "session": fastai, the best is reset at every fit and that fit's best reloaded at its end;
    # "stage": one best carried across the stage's sessions (the frozen one can win).
    best_of: Literal["session", "stage"] = "session"


@frozen_settings
class OptimizerConfig:
    # fastai's freeze()/unfreeze() clear Adam's moments and step count: the session after a
    # change of the encoder's freezing starts with a fresh optimizer. false: state carried over.
    reset_on_freeze_change: bool = True


@frozen_settings
class OneCycleConfig:
    """fastai ``fit_one_cycle`` defaults."""

    div: float = bounded(25.0, **POSITIVE)
    div_final: float = bounded(1e5, **POSITIVE)
    pct_start: float = bounded(0.25, low=0.0, high=1.0, low_open=True, high_open=True)
    moms: tuple[float, float, float] = bounded((0.95, 0.85, 0.95), low=0.0, high=1.0, high_open=True)


@frozen_settings
class TrainConfig:
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    one_cycle: OneCycleConfig = dataclasses.field(default_factory=OneCycleConfig)
    checkpoint: CheckpointConfig = dataclasses.field(default_factory=CheckpointConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    stages: tuple[Stage, ...] = dataclasses.field(default_factory=paper_stages)
    precision: Precision = "auto"
    strategy: Strategy = "auto"
    seed: int = 0
    out: str | None = None  # run folder; default runs/<config name>-<UTC time>
    # fine-tuning: start from this model (a run folder, or a U-Net converted by convert-weights
    # --faimed3d); its unet3d arguments fill the model section (train --init sets it)
    init: str | None = None
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
        spacing=data.target_spacing if stage.mode == "patch" else None,
        intensity=data.intensity,
        augment=data.augment,
        cache=data.cache,
    )
