"""The network a training run trained, rebuilt from its ``run.json`` with its best weights."""

from tfcovseg.errors import TfcovsegError
from tfcovseg.models.unet3d import unet3d
from tfcovseg.rundir import RunFolder, RunInfo


def load_run_model(run_dir, weights: str | None = None) -> tuple:
    """``(model, info)``: the run's U-Net with its best (or the given) weights loaded."""
    run = RunFolder(run_dir)
    info: RunInfo = run.read_info()
    path = run.root / (weights or info.weights)
    if not path.is_file():
        raise TfcovsegError("the run has no weights file yet (did training finish an epoch?)", path)
    model = unet3d(**info.model)
    model.load_weights(str(path))
    return model, info
