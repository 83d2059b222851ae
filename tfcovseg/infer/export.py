"""SavedModel export for TF Serving: raw HU in, lesion probabilities out.

Layout (TF Serving loads the highest numbered version and watches for new ones)::

    EXPORT_DIR/
        tfcovseg_export.json      what the signature expects; lets tfcovseg evaluate/predict use it
        1/saved_model.pb, 1/variables/...

The ``serving_default`` signature takes ``ct``: float32 ``[batch, D, H, W]`` in Hounsfield units
(any D, H, W; axial slices along D, as tfcovseg's ``[D, H, W]`` = ``[z, y, x]`` arrays of a RAS+
volume) and returns ``lesion_probability``: float32 ``[batch, D, H, W]`` on the same grid.
Clipping, intensity scaling, channel repetition and the resizing to the model's grid and back
(``resize`` runs) or the sliding window with Gaussian blending (``patch`` runs) are inside the
graph (``tfcovseg.infer.predictor.lesion_probabilities``), so a client needs nothing from
tfcovseg.

Serving it (TF Serving loads ``EXPORT_DIR`` as model ``tfcovseg``)::

    docker run -p 8501:8501 -p 8500:8500 -v "$PWD/EXPORT_DIR:/models/tfcovseg" \
        -e MODEL_NAME=tfcovseg tensorflow/serving

    curl -X POST http://localhost:8501/v1/models/tfcovseg:predict \
        -d '{"signature_name": "serving_default", "inputs": {"ct": [VOLUME]}}'

where ``VOLUME`` is the nested ``[D][H][W]`` list of HU values; the answer is
``{"outputs": [[[[p, ...]]]]}`` of the same shape. A whole CT is tens of millions of numbers:
JSON works for tests, the gRPC port (8500, ``PredictRequest`` with a ``TensorProto``) suits
real volumes.
"""

from pathlib import Path

import tensorflow as tf

import tfcovseg
from tfcovseg.config import to_dict
from tfcovseg.errors import TfcovsegError
from tfcovseg.files import atomic_dir, write_json
from tfcovseg.infer.predictor import (
    EXPORT_FILE,
    EXPORT_KIND,
    SIGNATURE,
    SIGNATURE_INPUT,
    SIGNATURE_OUTPUT,
    lesion_probabilities,
)
from tfcovseg.models.runs import load_run_model
from tfcovseg.rundir import InputSpec, RunFolder
from tfcovseg.settings.inference import DEFAULT_OVERLAP, check_sliding_window


class ServingModule(tf.Module):
    """The exported graph: a Keras model with its preprocessing and resizing."""

    def __init__(self, model, spec: InputSpec, overlap: float, batch_size: int):
        super().__init__(name="tfcovseg")
        self.model = model
        self._settings = (spec, overlap, batch_size)

    @tf.function(input_signature=[
        tf.TensorSpec([None, None, None, None], tf.float32, name=SIGNATURE_INPUT)
    ])
    def serve(self, ct):
        return {SIGNATURE_OUTPUT: lesion_probabilities(self.model, ct, *self._settings)}


def new_version_dir(out, version) -> Path:
    """``out/<version>``, refused if the number is not positive or the folder exists."""
    if int(version) < 1:
        raise TfcovsegError(f"the version must be a positive integer, got {version}")
    target = Path(out) / str(int(version))
    if target.exists():
        raise TfcovsegError("this version exists already; TF Serving needs a new number", target)
    return target


def export_keras_model(model, spec: InputSpec, out, version: int = 1, run=None,
                       overlap: float = DEFAULT_OVERLAP, batch_size: int = 1) -> Path:
    """Write ``out/<version>/`` (SavedModel) and ``out/tfcovseg_export.json``; returns the
    version folder."""
    check_sliding_window(overlap, batch_size)
    out = Path(out)
    target = new_version_dir(out, version)
    module = ServingModule(model, spec, overlap, batch_size)
    with atomic_dir(target) as staging:
        tf.saved_model.save(module, str(staging), signatures={SIGNATURE: module.serve})
    write_json(out / EXPORT_FILE, _export_info(spec, run, overlap, batch_size))
    return target


def _export_info(spec: InputSpec, run, overlap: float, batch_size: int) -> dict:
    return {
        "kind": EXPORT_KIND,
        "version": 1,
        "tfcovseg": tfcovseg.__version__,
        "signature": SIGNATURE,
        "inputs": {SIGNATURE_INPUT: "float32 [batch, D, H, W], raw Hounsfield units"},
        "outputs": {SIGNATURE_OUTPUT: "float32 [batch, D, H, W], lesion probability"},
        "input": to_dict(spec),
        "sliding_window": {"overlap": overlap, "batch_size": batch_size},
        "run": None if run is None else str(run),
    }


def export_savedmodel(model_dir, out, version: int = 1) -> Path:
    """Export the training run in ``model_dir`` for TF Serving as ``out/<version>/``."""
    RunFolder(model_dir).read_info()  # refuse a folder that is not a run before the slow build
    new_version_dir(out, version)
    keras_model, info = load_run_model(model_dir)
    target = export_keras_model(keras_model, info.input, out, version, run=model_dir)
    print(f"SavedModel written to {target}")
    print(f"  check:  saved_model_cli show --dir {target} --tag_set serve "
          f"--signature_def {SIGNATURE}")
    print(f"  serve:  docker run -p 8501:8501 -v {Path(out).resolve()}:/models/tfcovseg "
          "-e MODEL_NAME=tfcovseg tensorflow/serving")
    print(f"  use:    tfcovseg predict --model {out} CT.nii.gz")
    return target
