"""One "predict a volume" callable, from a run folder, a SavedModel export or a Keras model.

``load_predictor(path)`` accepts a training run (``run.json``, see ``tfcovseg.rundir``) or an
export (``tfcovseg_export.json`` next to TF Serving's numbered version folders, see
``tfcovseg.infer.export``) and returns a ``Predictor``: raw HU ``[D, H, W]`` in, lesion
probabilities ``[D, H, W]`` on the same grid out.

How a volume is predicted follows the run's ``InputSpec``:

- ``resize`` (the paper's whole-volume mode): resize the volume to the model's grid
  (trilinear, ``align_corners=True``, as the authors' PyTorch pipeline), clip and scale the
  intensities, predict, softmax, and resize the lesion probability back to the volume's grid
  (trilinear).
- ``patch``: scale the whole volume (as training does before cutting patches), then
  ``sliding_window`` over it with the model's input size as window, Gaussian blending and
  batched windows.

Both are one TensorFlow function (``lesion_probabilities``), the same graph the export serves.

A voxel is lesion when its probability exceeds ``THRESHOLD`` (argmax of the two classes).
"""

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfcovseg.config import from_dict
from tfcovseg.data.intensity import normalise
from tfcovseg.errors import ConfigError, TfcovsegError
from tfcovseg.files import read_json_of_kind
from tfcovseg.models.runs import load_run_model
from tfcovseg.models.sliding_window import (
    sliding_window_probabilities,
    window_probabilities,
)
from tfcovseg.resize import resize_linear
from tfcovseg.rundir import InputSpec, RunFolder
from tfcovseg.settings.inference import DEFAULT_OVERLAP, check_sliding_window

EXPORT_FILE = "tfcovseg_export.json"
EXPORT_KIND = "tfcovseg-export"
SIGNATURE = "serving_default"
SIGNATURE_INPUT = "ct"
SIGNATURE_OUTPUT = "lesion_probability"


@dataclasses.dataclass
class Predictor:
    """``predictor(hu)``: lesion probabilities for a raw HU ``[D, H, W]`` volume."""

    probabilities: Callable[[np.ndarray], np.ndarray]
    spec: InputSpec
    source: str  # what was loaded, for reports

    def __call__(self, volume_hu) -> np.ndarray:
        return np.asarray(self.probabilities(np.asarray(volume_hu, np.float32)), np.float32)


def lesion_probabilities(model, volumes_hu, spec: InputSpec, overlap=DEFAULT_OVERLAP,
                         batch_size=1):
    """Raw HU ``[B, D, H, W]`` -> lesion probabilities of the same shape, in TF ops.

    Resize mode resizes first, then clips and scales, in the order of the training pipeline
    (``tfcovseg.data.pipeline3d.fit_case_to_pipeline``), so min-max sees the same values; patch mode
    scales the whole volume before the windows are cut, as training does.
    """
    volumes_hu = tf.convert_to_tensor(volumes_hu, tf.float32)
    if spec.mode == "patch":
        scaled = normalise(volumes_hu, spec.intensity)
        return sliding_window_probabilities(model, scaled, spec.size, overlap, batch_size)
    grid = tf.shape(volumes_hu)[1:4]
    x = resize_linear(volumes_hu[..., None], spec.size)[..., 0]
    probabilities = window_probabilities(model, normalise(x, spec.intensity))
    return resize_linear(probabilities[..., None], [grid[0], grid[1], grid[2]])[..., 0]


def keras_predictor(model, spec: InputSpec, overlap=DEFAULT_OVERLAP, batch_size=1,
                    source="keras") -> Predictor:
    """A ``Predictor`` around a Keras model with the ``unet3d`` contract (logits [B,D,H,W,2])."""

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, None], tf.float32)])
    def predict(volumes):
        return lesion_probabilities(model, volumes, spec, overlap, batch_size)

    return Predictor(lambda hu: predict(hu[None])[0].numpy(), spec, source)


def export_version_dir(path) -> Path | None:
    """The SavedModel folder an export path names (its newest version), or None."""
    path = Path(path)
    if (path / EXPORT_FILE).is_file():
        versions = sorted(
            (int(p.name), p) for p in path.iterdir() if p.name.isdigit() and _is_savedmodel(p)
        )
        if not versions:
            raise TfcovsegError("export without a SavedModel version folder", path)
        return versions[-1][1]
    if path.name.isdigit() and (path.parent / EXPORT_FILE).is_file() and _is_savedmodel(path):
        return path
    return None


def _is_savedmodel(path: Path) -> bool:
    return (path / "saved_model.pb").is_file()


def read_export_info(version_dir: Path) -> dict:
    return read_json_of_kind(version_dir.parent / EXPORT_FILE, EXPORT_KIND, "tfcovseg export")


def savedmodel_predictor(version_dir, overlap=None, batch_size=None) -> Predictor:
    """A ``Predictor`` that runs an exported SavedModel's serving signature.

    A patch-mode export blends its windows as it was exported: an ``overlap`` or ``batch_size``
    other than the exported one is refused rather than ignored (None: as exported).
    """
    version_dir = Path(version_dir)
    info = read_export_info(version_dir)
    try:
        spec = from_dict(InputSpec, info.get("input", {}), "input")
    except ConfigError as err:
        raise ConfigError(err.problem, version_dir.parent / EXPORT_FILE) from None
    exported = info.get("sliding_window", {})
    asked = {"overlap": overlap, "batch_size": batch_size}
    if spec.mode == "patch" and any(v is not None and exported.get(k) != v
                                    for k, v in asked.items()):
        raise ConfigError(
            f"this patch-mode export blends windows with overlap {exported.get('overlap')} and "
            f"batch size {exported.get('batch_size')}, fixed when it was exported; --overlap "
            "and --batch-size cannot change them (leave them out, or predict with the run "
            "folder)", version_dir.parent / EXPORT_FILE)
    signature = tf.saved_model.load(str(version_dir)).signatures[SIGNATURE]

    def probabilities(hu):
        outputs = signature(**{SIGNATURE_INPUT: tf.constant(hu[None])})
        return outputs[SIGNATURE_OUTPUT][0].numpy()

    return Predictor(probabilities, spec, str(version_dir))


def load_predictor(path, overlap=None, batch_size=None) -> Predictor:
    """A ``Predictor`` from a run folder or an export (folder or one version of it).

    ``overlap`` and ``batch_size`` of the sliding window (patch mode); None: the defaults for a
    run, what was exported for an export.
    """
    check_sliding_window(overlap, batch_size)
    path = Path(path)
    if RunFolder(path).is_run():
        model, info = load_run_model(path)
        return keras_predictor(model, info.input, DEFAULT_OVERLAP if overlap is None else overlap,
                               1 if batch_size is None else batch_size, source=str(path))
    version_dir = export_version_dir(path)
    if version_dir is not None:
        return savedmodel_predictor(version_dir, overlap, batch_size)
    raise TfcovsegError(
        f"neither a tfcovseg run ({RunFolder(path).info_file.name}, written by train) nor an export "
        f"({EXPORT_FILE}, written by export)",
        path,
    )
