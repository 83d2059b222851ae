"""Fixtures for the infer tests: run folders and CT files built from the stand-ins."""

import numpy as np
import pytest
from standins import sphere_ct, tiny_unet

from tfcovseg.io.nifti import write_volume
from tfcovseg.rundir import InputSpec, RunFolder, RunInfo
from tfcovseg.settings.data import Intensity


@pytest.fixture
def make_run(tmp_path, monkeypatch):
    """Write a run folder for a stand-in model; ``load_run_model`` rebuilds it through unet3d."""
    import tfcovseg.models.runs

    def stand_in(encoder_weights=None, **kwargs):  # runs pass unet3d's encoder_weights
        return tiny_unet(**kwargs)

    monkeypatch.setattr(tfcovseg.models.runs, "unet3d", stand_in)

    def make(mode="resize", size=(8, 16, 16), pointwise=False, clip=(-1000.0, 500.0),
             spacing=None):
        run = tmp_path / f"run-{mode}-{int(pointwise)}-{'native' if spacing is None else 'resampled'}"
        kwargs = {"channels": 3, "pointwise": pointwise}
        (run / "checkpoints").mkdir(parents=True)
        tiny_unet(**kwargs).save_weights(str(run / "checkpoints" / "best.weights.h5"))
        spec = InputSpec(mode=mode, size=size, intensity=Intensity(clip=clip), spacing=spacing)
        RunFolder(run).write_info(RunInfo(model=kwargs, input=spec))
        return run

    return make


@pytest.fixture
def ct_file(tmp_path):
    """A sphere CT as NIfTI with anisotropic spacing (5 mm slices, 0.8 x 0.7 mm pixels)."""
    hu, inside = sphere_ct()
    path = tmp_path / "ct.nii.gz"
    write_volume(path, hu, np.diag([0.7, 0.8, 5.0, 1.0]))
    return path, inside
