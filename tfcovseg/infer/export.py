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
the sliding window with Gaussian blending and the resampling back (``patch`` runs), the slice
by slice 2D network of a grid cell (which does not use the spacing either; a
``lesions_in_lungs`` cell is exported with the ``lungs`` cell of ``--lung-model``, which finds
its input mask in the same graph), and the optional test-time mirroring (``--tta``) are inside
the graph
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
from tfcovseg.errors import ConfigError, TfcovsegError
from tfcovseg.files import atomic_dir, write_json
from tfcovseg.infer.predictor import (
    EXPORT_FILE,
    EXPORT_KIND,
    SIGNATURE,
    SIGNATURE_INPUT,
    SIGNATURE_OUTPUT,
    SIGNATURE_SPACING,
    applied_tta_axes,
    check_lung_model_input,
    inference_for,
    lesion_probabilities,
    load_lung_model,
    load_segmenter,
    needs_lungs,
)
from tfcovseg.loader import LoadedModel
from tfcovseg.rundir import InputSpec, SliceSpec
from tfcovseg.settings.inference import DEFAULT_INFERENCE, Inference, check_tta_axes


class ServingModule(tf.Module):
    """The exported graph: a Keras model with its preprocessing, resampling and mirroring (and
    the lung cell that masks a ``lesions_in_lungs`` cell's input)."""

    def __init__(self, model, spec: InputSpec | SliceSpec, inference: Inference,
                 lung_model: LoadedModel | None = None):
        super().__init__(name="tfcovseg")
        self.model = model
        self.lung_network = None if lung_model is None else lung_model.model
        self._settings = (spec, inference)
        self._lung_model = lung_model

    @tf.function(input_signature=[
        tf.TensorSpec([None, None, None, None], tf.float32, name=SIGNATURE_INPUT),
        tf.TensorSpec([3], tf.float32, name=SIGNATURE_SPACING),
    ])
    def serve(self, ct, spacing_mm):
        return {SIGNATURE_OUTPUT: lesion_probabilities(self.model, ct, spacing_mm,
                                                       *self._settings,
                                                       lung_model=self._lung_model)}


def new_version_dir(out, version) -> Path:
    """``out/<version>``, refused if the number is not positive or the folder exists."""
    if int(version) < 1:
        raise TfcovsegError(f"the version must be a positive integer, got {version}")
    target = Path(out) / str(int(version))
    if target.exists():
        raise TfcovsegError("this version exists already; TF Serving needs a new number", target)
    return target


def export_keras_model(model, spec: InputSpec | SliceSpec, out, version: int = 1, run=None,
                       inference: Inference = DEFAULT_INFERENCE,
                       lung_model: LoadedModel | None = None) -> Path:
    """Write ``out/<version>/`` (SavedModel) and ``out/tfcovseg_export.json``; returns the
    version folder. ``inference``: the sliding window (slices per call of a grid cell) and
    mirroring, fixed in the graph; ``lung_model``: a ``lesions_in_lungs`` cell's lung cell."""
    out = Path(out)
    target = new_version_dir(out, version)
    module = ServingModule(model, spec, inference, lung_model)
    with atomic_dir(target) as staging:
        tf.saved_model.save(module, str(staging), signatures={SIGNATURE: module.serve})
    write_json(out / EXPORT_FILE, _export_info(spec, run, inference, lung_model))
    return target


def _export_info(spec: InputSpec | SliceSpec, run, inference: Inference,
                 lung_model: LoadedModel | None) -> dict:
    if spec.spacing:
        resampled = "resampled to input.spacing, the run's target spacing, and back"
    elif spec.mode == "slices":
        resampled = "not used by this export's model (a 2D grid cell applied slice by slice)"
    else:
        resampled = "not used by this export's model (it takes the CT's own grid)"
    tta_axes = applied_tta_axes(spec, inference.tta_axes)
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
        "sliding_window": {"overlap": None if spec.mode == "slices" else inference.overlap,
                           "batch_size": inference.batch_size},  # slices per call, for a cell
        "tta_axes": None if tta_axes is None else list(tta_axes),
        "run": None if run is None else str(run),
        "lung_model": None if lung_model is None else str(lung_model.source),
    }


def export_savedmodel(model_dir, out, version: int = 1, tta_axes=None, lung_model=None) -> Path:
    """Export the model at ``model_dir`` (a run, a converted faimed3d U-Net, a lesion grid cell)
    for TF Serving as ``out/<version>/``.

    ``tta_axes``: test-time mirroring along those axes (0, 1, 2 = D, H, W; H and W for a grid
    cell) in the graph; None: none. ``lung_model``: the ``lungs`` cell that finds a
    ``lesions_in_lungs`` cell's input mask (required for one, refused for any other model).
    """
    check_tta_axes(tta_axes)
    new_version_dir(out, version)
    loaded = load_segmenter(model_dir)
    check_lung_model_input(needs_lungs(loaded.spec), lung_model)
    lungs = None if lung_model is None else load_lung_model(lung_model)
    if needs_lungs(loaded.spec) and lungs is None:
        raise ConfigError("a grid cell of the lesions_in_lungs experiment segments lung-masked "
                          "slices: export it with --lung-model LUNGS_CELL, whose lungs mask its "
                          "input inside the graph", model_dir)
    target = export_keras_model(loaded.model, loaded.spec, out, version, run=model_dir,
                                inference=inference_for(loaded.spec, tta_axes=tta_axes),
                                lung_model=lungs)
    print(f"SavedModel written to {target}")
    print(f"  check:  saved_model_cli show --dir {target} --tag_set serve "
          f"--signature_def {SIGNATURE}")
    print(f"  serve:  docker run -p 8501:8501 -v {Path(out).resolve()}:/models/tfcovseg "
          "-e MODEL_NAME=tfcovseg tensorflow/serving")
    return target
