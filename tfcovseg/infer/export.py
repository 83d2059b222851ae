"""SavedModel export for TF Serving: raw HU in, lesion probabilities out.

Layout (TF Serving loads the highest numbered version and watches for new ones)::

    EXPORT_DIR/
        tfcovseg_export.json      what the signature expects; lets tfcovseg evaluate/predict use it
        1/saved_model.pb, 1/variables/...

The ``serving_default`` signature takes ``ct``: float32 ``[batch, D, H, W]`` in Hounsfield units
(any D, H, W; axial slices along D, as tfcovseg's ``[D, H, W]`` = ``[z, y, x]`` arrays of a RAS+
volume) and ``spacing_mm``: float32 ``[3]``, the voxel size in mm along D, H, W (one for the
batch; from a NIfTI header ``get_zooms()[::-1]`` of a RAS+ file), and returns
``lesion_probability``: float32 ``[batch, D, H, W]`` on the same grid.
Clipping, intensity scaling, channel repetition and the resizing to the model's grid and back
(``resize`` runs, which do not use the spacing) or the resampling to the run's target spacing,
the sliding window with Gaussian blending and the resampling back (``patch`` runs), and the
optional test-time mirroring (``--tta``) are inside the graph
(``tfcovseg.infer.predictor.lesion_probabilities``), so a client needs nothing from tfcovseg.
A spacing that is not positive fails the request with an ``InvalidArgument`` error naming
``spacing_mm``.

Serving it (TF Serving loads ``EXPORT_DIR`` as model ``tfcovseg``)::

    docker run -p 8501:8501 -p 8500:8500 -v "$PWD/EXPORT_DIR:/models/tfcovseg" \
        -e MODEL_NAME=tfcovseg tensorflow/serving

    curl -X POST http://localhost:8501/v1/models/tfcovseg:predict \
        -d '{"signature_name": "serving_default", "inputs": {"ct": [VOLUME], "spacing_mm": [D_MM, H_MM, W_MM]}}'

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
    SIGNATURE_SPACING,
    lesion_probabilities,
)
from tfcovseg.models.runs import load_run_model
from tfcovseg.rundir import InputSpec, RunFolder
from tfcovseg.settings.inference import (
    DEFAULT_INFERENCE,
    Inference,
    check_tta_axes,
)


class ServingModule(tf.Module):
    """The exported graph: a Keras model with its preprocessing, resampling and mirroring."""

    def __init__(self, model, spec: InputSpec, inference: Inference):
        super().__init__(name="tfcovseg")
        self.model = model
        self._settings = (spec, inference)

    @tf.function(input_signature=[
        tf.TensorSpec([None, None, None, None], tf.float32, name=SIGNATURE_INPUT),
        tf.TensorSpec([3], tf.float32, name=SIGNATURE_SPACING),
    ])
    def serve(self, ct, spacing_mm):
        return {SIGNATURE_OUTPUT: lesion_probabilities(self.model, ct, spacing_mm,
                                                       *self._settings)}


def new_version_dir(out, version) -> Path:
    """``out/<version>``, refused if the number is not positive or the folder exists."""
    if int(version) < 1:
        raise TfcovsegError(f"the version must be a positive integer, got {version}")
    target = Path(out) / str(int(version))
    if target.exists():
        raise TfcovsegError("this version exists already; TF Serving needs a new number", target)
    return target


def export_keras_model(model, spec: InputSpec, out, version: int = 1, run=None,
                       inference: Inference = DEFAULT_INFERENCE) -> Path:
    """Write ``out/<version>/`` (SavedModel) and ``out/tfcovseg_export.json``; returns the
    version folder. ``inference``: the sliding window and mirroring, fixed in the graph."""
    out = Path(out)
    target = new_version_dir(out, version)
    module = ServingModule(model, spec, inference)
    with atomic_dir(target) as staging:
        tf.saved_model.save(module, str(staging), signatures={SIGNATURE: module.serve})
    write_json(out / EXPORT_FILE, _export_info(spec, run, inference))
    return target


def _export_info(spec: InputSpec, run, inference: Inference) -> dict:
    resampled = ("resampled to input.spacing, the run's target spacing, and back" if spec.spacing
                 else "not used by this export's model (it takes the CT's own grid)")
    return {
        "kind": EXPORT_KIND,
        "version": 2,
        "tfcovseg": tfcovseg.__version__,
        "signature": SIGNATURE,
        "inputs": {
            SIGNATURE_INPUT: "float32 [batch, D, H, W], raw Hounsfield units",
            SIGNATURE_SPACING: "float32 [3], voxel size in mm along D, H, W (positive), one for "
                               f"the batch; {resampled}",
        },
        "outputs": {SIGNATURE_OUTPUT: "float32 [batch, D, H, W], lesion probability"},
        "input": to_dict(spec),
        "sliding_window": {"overlap": inference.overlap, "batch_size": inference.batch_size},
        "tta_axes": None if inference.tta_axes is None else list(inference.tta_axes),
        "run": None if run is None else str(run),
    }


def export_savedmodel(model_dir, out, version: int = 1, tta_axes=None) -> Path:
    """Export the training run in ``model_dir`` for TF Serving as ``out/<version>/``.

    ``tta_axes``: test-time mirroring along those axes (0, 1, 2 = D, H, W) in the graph; None:
    none.
    """
    check_tta_axes(tta_axes)
    RunFolder(model_dir).read_info()  # refuse a folder that is not a run before the slow build
    new_version_dir(out, version)
    keras_model, info = load_run_model(model_dir)
    inference = Inference(tta_axes=None if tta_axes is None else tuple(tta_axes))
    target = export_keras_model(keras_model, info.input, out, version, run=model_dir,
                                inference=inference)
    print(f"SavedModel written to {target}")
    print(f"  check:  saved_model_cli show --dir {target} --tag_set serve "
          f"--signature_def {SIGNATURE}")
    print(f"  serve:  docker run -p 8501:8501 -v {Path(out).resolve()}:/models/tfcovseg "
          "-e MODEL_NAME=tfcovseg tensorflow/serving")
    print(f"  use:    tfcovseg predict --model {out} CT.nii.gz")
    return target
