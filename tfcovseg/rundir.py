"""What a training run leaves behind for prediction, evaluation and export.

``RUN_DIR/run.json`` marks a tfcovseg run::

    {"kind": "tfcovseg-run", "version": 1,
     "model": {...keyword arguments of tfcovseg.models.unet3d...},
     "input": {"mode": "resize"|"patch", "size": [D, H, W],
               "intensity": {...tfcovseg.data.intensity.Intensity...}},
     "weights": "checkpoints/best.weights.h5"}

Training writes it (``write_run_info``); everything downstream reads it (``read_run_info``,
``load_model``), so nothing downstream needs the training config.
"""

import dataclasses
from pathlib import Path
from typing import Literal

from tfcovseg.config import from_dict, to_dict
from tfcovseg.errors import TfcovsegError
from tfcovseg.files import read_json_of_kind, write_json
from tfcovseg.settings.data import Intensity

RUN_FILE = "run.json"
RUN_KIND = "tfcovseg-run"


@dataclasses.dataclass
class InputSpec:
    mode: Literal["resize", "patch"] = "resize"
    size: tuple[int, int, int] = (18, 112, 112)
    intensity: Intensity = dataclasses.field(default_factory=Intensity)


@dataclasses.dataclass
class RunInfo:
    model: dict
    input: InputSpec
    weights: str = "checkpoints/best.weights.h5"


def write_run_info(run_dir, info: RunInfo) -> None:
    data = {"kind": RUN_KIND, "version": 1, "model": dict(info.model)}
    data["input"] = to_dict(info.input)
    data["weights"] = info.weights
    write_json(Path(run_dir) / RUN_FILE, data)


def read_run_info(run_dir) -> RunInfo:
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise TfcovsegError(f"not a tfcovseg run: no {RUN_FILE} (train writes one)", run_dir)
    data = read_json_of_kind(path, RUN_KIND, "tfcovseg run")
    spec = from_dict(InputSpec, data.get("input", {}), "input")
    return RunInfo(model=dict(data.get("model", {})), input=spec, weights=data.get("weights", ""))


def load_model(run_dir, weights: str | None = None):
    """Rebuild the run's model and load its best (or the given) weights: ``(model, info)``."""
    info = read_run_info(run_dir)
    path = Path(run_dir) / (weights or info.weights)
    if not path.is_file():
        raise TfcovsegError("the run has no weights file yet (did training finish an epoch?)", path)
    from tfcovseg.models import unet3d

    model = unet3d(**info.model)
    model.load_weights(str(path))
    return model, info
