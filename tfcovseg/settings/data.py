"""Settings of the data pipelines: intensity, 3D and 2D augmentation, 3D and 2D sampling.

Defaults: Bressem et al. / faimed3d for the 3D pipeline (PAPERS.md section 1), Bizopoulos et
al. for the 2D one (section 2). The maths lives in ``tfcovseg.data``.
"""

import dataclasses
from typing import Literal, get_args

from tfcovseg.config import bounded, frozen_settings

# tfcovseg prepare SOURCE
Source = Literal["ricord", "mosmed", "coronacases", "medseg", "radiopaedia", "folder", "slices"]
SOURCES = get_args(Source)
PipelineKind = Literal["3d", "2d"]  # the U-Net's volumes, the grid's slices
Mode = Literal["resize", "patch"]  # whole volumes resized (the paper) or patches cut
Scaling = Literal["minmax", "fixed"]
Experiment = Literal["lungs", "lesions", "lesions_in_lungs"]  # the grid's lungs, lesions 'A', 'B'
EXPERIMENTS = get_args(Experiment)
MEAN_HU, STD_HU = -500.0, 500.0  # Bizopoulos et al.'s normalisation
PROBABILITY = {"low": 0.0, "high": 1.0}
SPACING_MM = {"low": 0.0, "low_open": True}  # a voxel size: positive millimetres


@frozen_settings
class Intensity:
    """Bressem et al.: per-volume min-max to [0, 1] (RICORD clipped to [-2000, 500] HU at
    conversion); Bizopoulos et al.: ``fixed`` with mean -500, std 500."""

    clip: tuple[float, float] | None = None  # HU window applied before scaling
    scaling: Scaling = "minmax"  # per-volume min-max, or (x - mean) / std
    mean: float = MEAN_HU
    std: float = bounded(STD_HU, low=0.0, low_open=True)

    def __post_init__(self):
        if self.clip is not None and self.clip[0] >= self.clip[1]:
            raise ValueError(f"clip must be [low, high] with low < high, got {list(self.clip)}")


@frozen_settings
class Augment3D:
    """faimed3d's augmentations with the example probability 0.15 each (tfcovseg.data.augment)."""

    enabled: bool = True
    flip: float = bounded(0.15, **PROBABILITY)
    flip_axes: tuple[int, ...] = bounded((0, 1, 2), low=0, high=2)  # D, H, W as in faimed3d
    rotation: float = bounded(0.15, **PROBABILITY)
    rotation_degrees: tuple[float, float, float] = (30.0, 2.0, 2.0)  # about the D, H, W axis
    perspective: float = bounded(0.15, **PROBABILITY)
    perspective_distortion: float = bounded(0.25, low=0.0, high=1.0, high_open=True)
    brightness: float = bounded(0.15, **PROBABILITY)
    brightness_range: tuple[float, float] = (-0.3, 0.3)
    contrast: float = bounded(0.15, **PROBABILITY)
    contrast_range: tuple[float, float] = (0.7, 2.0)
    noise: float = bounded(0.15, **PROBABILITY)
    noise_range: tuple[float, float] = (0.1, 0.3)  # sigma of the multiplicative noise

    def __post_init__(self):
        for name in ("brightness_range", "contrast_range", "noise_range"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"{name} must be [low, high] with low <= high, got {[low, high]}")
        if not self.flip_axes:
            raise ValueError("flip_axes must name at least one axis among 0, 1, 2")


def check_spacing_mode(spacing, mode: str) -> None:
    """A target ``spacing`` belongs to patch mode only (the pipeline's and a run's input spec);
    raises ``ValueError`` otherwise."""
    if spacing is not None and mode != "patch":
        raise ValueError(f"a target spacing is for patch mode (resize mode resizes whole volumes "
                         f"to size), got spacing {list(spacing)} with mode {mode!r}")


@frozen_settings
class Pipeline3D:
    """How the 3D pipeline samples a prepared dataset (tfcovseg.data.pipeline3d)."""

    mode: Mode = "resize"
    size: tuple[int, int, int] = bounded((18, 112, 112), low=1)  # resize target (paper stage 1)
    patch_size: tuple[int, int, int] = bounded((32, 128, 128), low=1)
    lesion_fraction: float = bounded(0.5, **PROBABILITY)  # patches centred on a lesion voxel
    patches_per_volume: int = bounded(1, low=1)
    # patch mode: every case resampled to this voxel size (mm, D H W) first; None: native grids
    spacing: tuple[float, float, float] | None = bounded(None, **SPACING_MM)
    intensity: Intensity = dataclasses.field(default_factory=Intensity)
    augment: Augment3D = dataclasses.field(default_factory=Augment3D)
    cache: bool = False  # keep resized (or normalised) volumes in memory after the first pass
    num_parallel: int | None = bounded(None, low=1)  # parallel calls; None: tf.data.AUTOTUNE

    def __post_init__(self):
        check_spacing_mode(self.spacing, self.mode)


@frozen_settings
class Augment2D:
    """Bizopoulos et al.: flips, rotation in [-180, 180] degrees, scale in [0.5, 1.5]."""

    enabled: bool = True
    horizontal_flip: float = bounded(0.5, **PROBABILITY)
    vertical_flip: float = bounded(0.5, **PROBABILITY)
    rotation_degrees: tuple[float, float] = (-180.0, 180.0)
    scale: tuple[float, float] = bounded((0.5, 1.5), low=0.0, low_open=True)

    def __post_init__(self):
        if self.scale[0] > self.scale[1]:
            raise ValueError(f"scale must be [low, high] with low <= high, got {list(self.scale)}")
        if self.rotation_degrees[0] > self.rotation_degrees[1]:
            raise ValueError("rotation_degrees must be [low, high] with low <= high")


def _grid_intensity() -> Intensity:
    return Intensity(scaling="fixed", mean=MEAN_HU, std=STD_HU)


@frozen_settings
class Pipeline2D:
    """How the 2D pipeline cuts and feeds axial slices (tfcovseg.data.pipeline2d)."""

    size: tuple[int, int] = bounded((512, 512), low=1)
    intensity: Intensity = dataclasses.field(default_factory=_grid_intensity)
    augment: Augment2D = dataclasses.field(default_factory=Augment2D)
    cache: bool = True  # keep prepared slices in memory (about 1.3 MB per 512x512 slice)
    shuffle_buffer: int = bounded(1024, low=1)  # slices; at least the whole MedSeg training set
    num_parallel: int | None = bounded(None, low=1)  # None: tf.data.AUTOTUNE
