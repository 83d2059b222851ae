"""The layout of a training run folder: the one module that names a run's files.

::

    RUN/
      config.yaml        the resolved training config (what --resume reads back)
      environment.json   versions, git revision, device, precision, strategy
      split.json         the seeded train/tuning split (case ids)
      dataset.json       a copy of the training dataset's manifest (its folder is in run.json)
      history.csv        stage, phase, epoch, lr, loss, val_loss, val_dice, seconds
      checkpoints/       <stage>.best.h5 (weights), last-*/ (weights + optimizer), state.json
      tensorboard/       TensorBoard logs per stage
      summary.json       best tuning Dice per stage, wall time
      run.json           what predict/evaluate/export load (below)
      predictions/       where the printed next step's `tfcovseg predict` writes
      evaluation/        `tfcovseg evaluate --model RUN` results, one folder per dataset

``run.json`` marks a tfcovseg run::

    {"kind": "tfcovseg-run", "version": 1,
     "model": {...keyword arguments of tfcovseg.models.unet3d...},
     "input": {"mode": "resize"|"patch", "size": [D, H, W],
               "intensity": {...tfcovseg.settings.data.Intensity...},
               "spacing": [D, H, W] mm | null},
     "weights": "checkpoints/stage1.best.h5",
     "dataset": "/absolute/path/of/the/training/dataset"}

Training writes it; everything downstream reads it, so nothing downstream needs the config.
"""

import csv
import dataclasses
import io
import json
import shutil
from pathlib import Path
from typing import Literal

from tfcovseg.config import bounded, from_dict, frozen_settings, to_dict
from tfcovseg.errors import ConfigError, DataError, TfcovsegError
from tfcovseg.files import read_json_of_kind, write_json, write_text
from tfcovseg.settings.data import SPACING_MM, Experiment, Intensity, Mode, check_spacing_mode

RUN_KIND = "tfcovseg-run"
HISTORY_COLUMNS = ("stage", "phase", "epoch", "lr", "loss", "val_loss", "val_dice", "seconds")
LAST_PREFIX = "last-"  # checkpoints/last-<stage>-p<phase>-e<epoch>/: weights + optimizer


@frozen_settings
class InputSpec:
    """What the model takes: whole volumes resized to ``size`` or ``size`` patches.

    ``spacing`` (patch mode): the voxel size in mm (D, H, W) the model was trained at; inputs
    are resampled to it and the probabilities back (``tfcovseg.infer.predictor``). None: the
    input's own grid (resize mode, and patch-mode runs trained before target spacings).
    """

    mode: Mode = "resize"
    size: tuple[int, int, int] = bounded((18, 112, 112), low=1)
    intensity: Intensity = dataclasses.field(default_factory=Intensity)
    spacing: tuple[float, float, float] | None = bounded(None, **SPACING_MM)

    def __post_init__(self):
        check_spacing_mode(self.spacing, self.mode)


@frozen_settings
class SliceSpec:
    """What a 2D grid cell takes: axial slices resized to ``size`` (H, W), HU normalised by
    ``intensity`` (Bizopoulos et al.: mean -500, std 500), one grey channel, for ``experiment``
    (lungs, lesions, or lesions on lung-masked input). Each slice is taken at its own pixel
    size, so a slice model has no target ``spacing``."""

    size: tuple[int, int] = bounded((512, 512), low=1)
    intensity: Intensity = dataclasses.field(default_factory=Intensity)
    experiment: Experiment = "lesions"
    mode: Literal["slices"] = "slices"
    spacing = None  # not a field: slices are not resampled


@dataclasses.dataclass(frozen=True)
class RunInfo:
    model: dict
    input: InputSpec
    weights: str = "checkpoints/best.weights.h5"
    dataset: str | None = None  # the training dataset's folder


@dataclasses.dataclass
class Position:
    """The next epoch to train: ``epoch`` epochs of phase ``phase`` of stage ``stage`` are done."""

    stage: int = 0
    phase: int = 0
    epoch: int = 0
    best: dict = dataclasses.field(default_factory=dict)  # session or stage -> best tuning Dice
    checkpoint: str | None = None  # folder (relative to the run) of the last checkpoint


@dataclasses.dataclass(frozen=True)
class RunFolder:
    """A training run's folder and its files (see the module docstring)."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    config = property(lambda self: self.root / "config.yaml")
    environment = property(lambda self: self.root / "environment.json")
    split_file = property(lambda self: self.root / "split.json")
    dataset_copy = property(lambda self: self.root / "dataset.json")
    history_file = property(lambda self: self.root / "history.csv")
    checkpoints = property(lambda self: self.root / "checkpoints")
    state_file = property(lambda self: self.root / "checkpoints" / "state.json")
    tensorboard = property(lambda self: self.root / "tensorboard")
    summary_file = property(lambda self: self.root / "summary.json")
    info_file = property(lambda self: self.root / "run.json")
    predictions = property(lambda self: self.root / "predictions")
    evaluation = property(lambda self: self.root / "evaluation")

    @staticmethod
    def best_weights(stage: str) -> str:
        """A stage's best weights (HDF5, weights only), relative to the run folder."""
        return f"checkpoints/{stage}.best.h5"

    @staticmethod
    def last_checkpoint(stage: str, phase: int, epoch: int) -> str:
        """The folder of the checkpoint after ``epoch`` epochs of phase ``phase`` (1-based)."""
        return f"checkpoints/{LAST_PREFIX}{stage}-p{phase}-e{epoch}"

    def is_run(self) -> bool:
        return self.info_file.is_file()

    def write_info(self, info: RunInfo) -> None:
        data = {"kind": RUN_KIND, "version": 1, "model": dict(info.model),
                "input": to_dict(info.input), "weights": info.weights, "dataset": info.dataset}
        write_json(self.info_file, data)

    def read_info(self) -> RunInfo:
        if not self.is_run():
            raise TfcovsegError(f"not a tfcovseg run: no {self.info_file.name} (train writes one)",
                                self.root)
        data = read_json_of_kind(self.info_file, RUN_KIND, "tfcovseg run")
        try:
            spec = from_dict(InputSpec, data.get("input", {}), "input")
        except ConfigError as err:
            raise ConfigError(err.problem, self.info_file) from None
        return RunInfo(model=dict(data.get("model", {})), input=spec,
                       weights=data.get("weights", ""), dataset=data.get("dataset"))

    def trained_dataset(self) -> Path:
        """The folder of the dataset the run trained on, as run.json records it."""
        root = self.read_info().dataset
        if root is None:
            raise DataError("the run does not record its dataset (trained before tfcovseg "
                            "recorded it): give --data", self.info_file)
        if not Path(root).is_dir():
            raise DataError(f"the run's training dataset {root} is not there any more: give --data",
                            self.info_file)
        return Path(root)

    def copy_manifest(self, manifest: Path) -> None:
        shutil.copyfile(manifest, self.dataset_copy)

    def write_split(self, split: dict) -> None:
        write_json(self.split_file, split)

    def read_split(self) -> dict:
        try:
            return json.loads(self.split_file.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise TfcovsegError(f"cannot read the run's train/tuning split ({err})",
                                self.split_file) from None

    def write_position(self, position: Position) -> None:
        write_json(self.state_file, dataclasses.asdict(position))

    def read_position(self) -> Position:
        if not self.state_file.is_file():
            return Position()
        try:
            return Position(**json.loads(self.state_file.read_text()))
        except (json.JSONDecodeError, TypeError) as err:
            raise TfcovsegError(f"corrupt training state ({err})", self.state_file) from None

    def read_history(self) -> list:
        if not self.history_file.is_file():
            return []
        return list(csv.DictReader(io.StringIO(self.history_file.read_text())))

    def write_history(self, rows: list) -> None:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_text(self.history_file, text.getvalue())

    def read_summary(self) -> dict:
        return json.loads(self.summary_file.read_text()) if self.summary_file.is_file() else {}

    def write_summary(self, summary: dict) -> None:
        write_json(self.summary_file, summary)
