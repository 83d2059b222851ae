"""The 3D networks tfcovseg can rebuild from disk: a training run's U-Net (from its ``run.json``)
and converted PyTorch weights (from the sidecar ``tfcovseg convert-weights`` writes beside them).

``find_model_file(path)`` says what a path holds without building anything (so ``train --init``
checks it before any work); ``build_model_file`` builds the network and loads the weights.
``tfcovseg.load_model`` adds the 2D grid cells on top.
"""

import dataclasses
from pathlib import Path

from tfcovseg.errors import TfcovsegError
from tfcovseg.models.convert import read_sidecar
from tfcovseg.models.r3d18 import r3d18
from tfcovseg.models.unet3d import unet3d
from tfcovseg.rundir import InputSpec, RunFolder, RunInfo
from tfcovseg.settings.data import Intensity
from tfcovseg.settings.train import paper_stages

# what each source of converted weights is called in tfcovseg.load_model
CONVERTED_KINDS = {"faimed3d": "faimed3d", "torchvision": "torchvision_encoder"}
# A converted faimed3d U-Net was trained at the authors' last stage (20x256x256, min-max);
# torchvision's encoder is taken at stage 1's size (18x112x112), where the U-Net starts from it.
FAIMED3D_INPUT = InputSpec(mode="resize", size=paper_stages()[-1].size, intensity=Intensity())
ENCODER_INPUT = InputSpec(mode="resize", size=paper_stages()[0].size, intensity=Intensity())


@dataclasses.dataclass(frozen=True)
class ModelFile:
    """A 3D network on disk: ``kind`` ("run", "faimed3d", "torchvision_encoder"), the
    ``unet3d`` keyword arguments that build it (``{}`` for the R3D-18 encoder), its input
    and its weights file."""

    kind: str
    path: Path
    arguments: dict
    input: InputSpec
    weights: Path


def load_run_model(run_dir) -> tuple:
    """``(model, info)``: the run's U-Net with its best weights loaded."""
    run = RunFolder(run_dir)
    info = run.read_info()
    return build_model_file(run_model_file(run, info)), info


def run_model_file(run: RunFolder, info: RunInfo) -> ModelFile:
    """The U-Net a run trained, as its ``run.json`` (``info``) records it."""
    return ModelFile("run", run.root, dict(info.model), info.input, run.root / info.weights)


def unet3d_arguments(arguments: dict) -> dict:
    """The arguments without ``encoder_weights``: the weights loaded afterwards replace the
    encoder's, so the Kinetics file (perhaps on another machine) is not read again."""
    return {**arguments, "encoder_weights": None}


def find_model_file(path) -> ModelFile | None:
    """The 3D network at ``path`` (a run folder with ``run.json``, or an ``.h5`` with the sidecar
    of ``tfcovseg convert-weights``); None when ``path`` is neither. An ``.h5`` without that
    sidecar (or beside a JSON of another kind) raises the ``TfcovsegError`` that says so."""
    path = Path(path)
    run = RunFolder(path)
    if path.is_dir() and run.is_run():
        return run_model_file(run, run.read_info())
    if path.is_file() and path.suffix == ".h5":
        sidecar = read_sidecar(path)
        kind = CONVERTED_KINDS[sidecar["source"]]
        spec = FAIMED3D_INPUT if kind == "faimed3d" else ENCODER_INPUT
        return ModelFile(kind, path, dict(sidecar["arguments"]), spec, path)
    return None


def build_model_file(found: ModelFile):
    """The network of ``found`` with its weights loaded (a plain ``tf.keras.Model``)."""
    if not found.weights.is_file():
        problem = ("the run has no weights file yet (did training finish an epoch?)"
                   if found.kind == "run" else "the weights file is missing")
        raise TfcovsegError(problem, found.weights)
    if found.kind == "torchvision_encoder":
        return r3d18(weights=str(found.weights))
    model = unet3d(**unet3d_arguments(found.arguments))
    model.load_weights(str(found.weights))
    return model
