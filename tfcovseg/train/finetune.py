"""Fine-tuning: a training run that starts from a trained 3D U-Net (``tfcovseg train --init``).

- ``resolve_init``: what ``config.init`` names (a run folder, or a U-Net converted from faimed3d;
  ``tfcovseg.models.runs``) and the config it gives: the model's ``unet3d`` arguments, its
  intensity scaling and target spacing fill those settings. A setting the config gives
  explicitly (other than its default) must agree with the model; a conflict is one
  ``ConfigError`` naming both values. Checked from the files alone, before any work.
- ``tuning_scores``: lesion Dice and normalized surface Dice per tuning volume, on the grid the
  model sees (the pipeline's), as Ma et al.'s benchmark scores them (``tfcovseg.metrics``: both
  masks empty -> NaN, left out of the means); the run reports them with the loaded weights
  before the first step and with the best weights after the last (summary.json "before",
  "after").
"""

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfcovseg.data.pipeline3d import volume_dataset, whole_volume_dataset
from tfcovseg.errors import ConfigError, WeightsError
from tfcovseg.io.nifti import read_grid, spacing_mm
from tfcovseg.metrics import LESION_TOLERANCE_MM, dice, surface_dice
from tfcovseg.models.runs import ModelFile, find_model_file
from tfcovseg.models.sliding_window import lesion_mask, sliding_window_probabilities
from tfcovseg.settings.data import Pipeline3D
from tfcovseg.settings.train import DataConfig, ModelConfig, TrainConfig
from tfcovseg.train.callbacks import LESION

INIT_KINDS = ("run", "faimed3d")  # whole U-Nets; R3D-18 encoder weights go to model.encoder_weights
EXPECTED = ("a training run folder (with run.json) or a U-Net converted by tfcovseg "
            "convert-weights --faimed3d (an .h5 with its .json sidecar)")
# unet3d arguments that only initialise weights, which the loaded weights then replace: not
# checked against the config (the model's lesion_prior is kept where it records one)
INITIALISERS = ("encoder_weights", "lesion_prior")


def resolve_init(config: TrainConfig) -> tuple[TrainConfig, ModelFile]:
    """``(config with the model's settings, the model file)`` for ``config.init``."""
    found = init_model_file(config.init)
    problems = []
    model = _model_settings(config.model, found.arguments, problems)
    data = config.data
    intensity = _agreed("data.intensity", data.intensity, DataConfig().intensity,
                        found.input.intensity, problems)
    spacing = _agreed("data.target_spacing", data.target_spacing, DataConfig().target_spacing,
                      found.input.spacing or data.target_spacing, problems)
    if problems:
        raise ConfigError(f"--init {found.path}: the config disagrees with the model: "
                          f"{'; '.join(problems)} (leave these at their defaults, or start "
                          f"from another model)")
    data = dataclasses.replace(data, intensity=intensity, target_spacing=spacing)
    init = str(Path(config.init).resolve())
    return dataclasses.replace(config, model=model, data=data, init=init), found


def init_model_file(path) -> ModelFile:
    """The whole 3D U-Net at ``path``; ``WeightsError`` naming it for anything else (a 2D grid
    cell, encoder weights alone, a folder without run.json)."""
    found = find_model_file(path)
    if found is None:
        raise WeightsError(f"train --init needs a 3D U-Net: {EXPECTED}{_described_as(Path(path))}",
                           path)
    if found.kind not in INIT_KINDS:
        raise WeightsError(f"R3D-18 encoder weights, not a whole U-Net: start the encoder from "
                           f"them with model.encoder_weights={path} instead of --init", path)
    return found


def tuning_scores(model, dataset, cases: list, pipeline: Pipeline3D,
                  tolerance_mm: float = LESION_TOLERANCE_MM) -> dict:
    """Mean lesion Dice and NSD of ``model`` over ``cases`` (per case under ``cases``), on the
    pipeline's grid: resized whole volumes (resize mode) or the sliding window (patch mode).

    The spacing of that grid is the case's field of view over the grid's shape.
    """
    window = pipeline.patch_size if pipeline.mode == "patch" else None
    if window is None:
        volumes = volume_dataset(dataset, cases, pipeline, batch_size=1, training=False)
    else:
        volumes = whole_volume_dataset(dataset, cases, pipeline)
    per_case = {}
    for case, (image, label) in zip(cases, volumes):
        predicted = _lesions(model, image, window)
        truth = label.numpy()[0, ..., 0] == LESION
        spacing = grid_spacing(dataset, case, truth.shape)
        per_case[case.id] = {"dice": _finite(dice(truth, predicted)),
                             "nsd": _finite(surface_dice(truth, predicted, spacing, tolerance_mm))}
    return {"dice": _mean(per_case, "dice"), "nsd": _mean(per_case, "nsd"),
            "tolerance_mm": tolerance_mm, "cases": per_case}


def describe_scores(scores: dict) -> str:
    """``Dice 0.712, NSD 0.801 (3 mm) on 8 tuning volumes``."""
    def shown(value):
        return "n/a" if value is None else f"{value:.3f}"

    return (f"Dice {shown(scores['dice'])}, NSD {shown(scores['nsd'])} "
            f"({scores['tolerance_mm']:g} mm) on {len(scores['cases'])} tuning volumes")


def grid_spacing(dataset, case, grid_shape) -> tuple:
    """Voxel size (mm, D H W) of ``case`` resampled onto ``grid_shape`` (same field of view)."""
    shape, affine = read_grid(dataset.path(case.image))
    return tuple(s * n / g for s, n, g in zip(spacing_mm(affine), shape, grid_shape))


def _lesions(model, image, window) -> np.ndarray:
    if window is None:
        logits = model(image, training=False)
        return np.argmax(tf.cast(logits, tf.float32).numpy(), axis=-1)[0] == LESION
    probabilities = sliding_window_probabilities(model, image[..., 0], window)
    return lesion_mask(probabilities.numpy())[0]


def _model_settings(configured: ModelConfig, arguments: dict, problems: list) -> ModelConfig:
    """The model section the loaded network was built with; a converted U-Net is full width."""
    defaults = ModelConfig()
    values = dataclasses.asdict(configured)
    if configured.encoder_weights is not None:
        problems.append(f"model.encoder_weights is {configured.encoder_weights!r}, but --init "
                        f"gives all the weights")
    for name, loaded in {**dataclasses.asdict(defaults), **arguments}.items():
        if name not in INITIALISERS:
            values[name] = _agreed(f"model.{name}", values[name], getattr(defaults, name), loaded,
                                   problems)
    values["lesion_prior"] = arguments.get("lesion_prior", configured.lesion_prior)
    values["encoder_weights"] = None
    return ModelConfig(**values)


def _agreed(key: str, configured, default, loaded, problems: list):
    """``loaded``, noting a problem when the config set ``key`` to something else."""
    if configured != default and configured != loaded:
        problems.append(f"{key} is {_plain(configured)} in the config, {_plain(loaded)} in the model")
    return loaded


def _plain(value):
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else repr(value)


def _described_as(path: Path) -> str:
    """`` (cells/x.json says it is a 'tfcovseg-bench-cell')`` when a JSON of tfcovseg's describes it."""
    candidates = [path] if path.suffix == ".json" else [path.with_name(f"{path.name}.json")]
    for candidate in candidates:
        try:
            kind = json.loads(candidate.read_text()).get("kind")
        except (OSError, ValueError, AttributeError):
            continue
        return f" ({candidate} says it is a {kind!r})"
    return ""


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value


def _mean(per_case: dict, metric: str) -> float | None:
    values = [scores[metric] for scores in per_case.values() if scores[metric] is not None]
    return float(np.mean(values)) if values else None
