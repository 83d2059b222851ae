"""One "predict a volume" callable, from a run folder, a SavedModel export or a Keras model.

``load_predictor(path)`` accepts a training run (``run.json``, see ``tfcovseg.rundir``) or an
export (``tfcovseg_export.json`` next to TF Serving's numbered version folders, see
``tfcovseg.infer.export``) and returns a ``Predictor``: raw HU ``[D, H, W]`` and its voxel
spacing (mm along D, H, W) in, lesion probabilities ``[D, H, W]`` on the same grid out.

How a volume is predicted follows the run's ``InputSpec``:

- ``resize`` (the paper's whole-volume mode): resize the volume to the model's grid
  (trilinear, ``align_corners=True``, as the authors' PyTorch pipeline), clip and scale the
  intensities, predict, softmax, and resize the lesion probability back to the volume's grid
  (trilinear). The spacing is not used.
- ``patch``: resample the volume to the run's target spacing (trilinear, as training resampled
  its cases; ``tfcovseg.resize.resampled_size``) when the run records one, scale it (as
  training does before cutting patches), ``sliding_window`` over it with the model's input
  size as window, Gaussian blending and batched windows, and resample the probabilities back
  to the input's grid (trilinear).

Optional test-time mirroring (``tta_axes``) averages each window's (resize mode: the resized
volume's) probabilities over its flips (``tfcovseg.models.sliding_window.mirrored``).
All of it is one TensorFlow function (``lesion_probabilities``), the graph the export serves.

A voxel is lesion when its probability exceeds ``THRESHOLD`` (argmax of the two classes).
"""

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfcovseg.config import from_dict
from tfcovseg.data.intensity import normalise
from tfcovseg.errors import ConfigError, DataError, TfcovsegError
from tfcovseg.files import read_json_of_kind
from tfcovseg.models.runs import load_run_model
from tfcovseg.models.sliding_window import (
    mirrored,
    sliding_window_probabilities,
    window_probabilities,
)
from tfcovseg.resize import check_resampled_size, resampled_size, resize_linear
from tfcovseg.rundir import InputSpec, RunFolder
from tfcovseg.settings.inference import (
    DEFAULT_INFERENCE,
    Inference,
    check_sliding_window,
    check_tta_axes,
)

EXPORT_FILE = "tfcovseg_export.json"
EXPORT_KIND = "tfcovseg-export"
SIGNATURE = "serving_default"
SIGNATURE_INPUT = "ct"
SIGNATURE_SPACING = "spacing_mm"
SIGNATURE_OUTPUT = "lesion_probability"
SPACING_MESSAGE = "spacing_mm must be 3 positive voxel sizes in mm (D, H, W)"


@dataclasses.dataclass
class Predictor:
    """``predictor(hu, spacing_mm)``: lesion probabilities for a raw HU ``[D, H, W]`` volume
    whose voxels measure ``spacing_mm`` (D, H, W)."""

    probabilities: Callable[[np.ndarray, np.ndarray], np.ndarray]
    spec: InputSpec
    source: str  # what was loaded, for reports
    tta_axes: tuple | None = None  # the test-time mirroring applied (None: none), for reports

    def __call__(self, volume_hu, spacing_mm) -> np.ndarray:
        volume_hu = np.asarray(volume_hu, np.float32)
        spacing_mm = check_fits(self.spec, volume_hu.shape, spacing_mm)
        return np.asarray(self.probabilities(volume_hu, spacing_mm), np.float32)


def check_fits(spec: InputSpec, shape, spacing_mm, path=None) -> np.ndarray:
    """``spacing_mm`` as float32 [3], once the volume fits the model: 3D, a spacing of three
    positive finite millimetres, and (a target spacing) at least half a target voxel thick
    along every axis. Raises ``DataError`` naming ``path`` otherwise."""
    spacing = np.asarray(spacing_mm, np.float64).reshape(-1)
    if len(shape) != 3:
        raise DataError(f"expected a 3D [D, H, W] volume, got shape {tuple(shape)}", path)
    if spacing.size != 3 or not (np.isfinite(spacing).all() and (spacing > 0).all()):
        raise DataError(f"voxel spacing {spacing.tolist()} mm: expected 3 positive sizes in mm "
                        "(D, H, W)", path)
    if spec.spacing is not None:
        size = [int(n) for n in resampled_size(shape, spacing, spec.spacing)]
        if min(size) < 1:
            raise DataError(
                f"the volume ({list(shape)} voxels of {spacing.tolist()} mm) is thinner than half "
                f"a voxel of the model's target spacing {list(spec.spacing)} mm along an axis "
                f"(resampled size {size})", path)
    return spacing.astype(np.float32)


def lesion_probabilities(model, volumes_hu, spacing_mm, spec: InputSpec,
                         inference: Inference = DEFAULT_INFERENCE):
    """Raw HU ``[B, D, H, W]`` of voxel size ``spacing_mm`` ([3], D, H, W) -> lesion
    probabilities of the same shape, in TF ops (the spacing checked in the graph).

    Resize mode resizes first, then clips and scales, in the order of the training pipeline
    (``tfcovseg.data.pipeline3d.fit_case_to_pipeline``), so min-max sees the same values; patch
    mode resamples (a target spacing) and scales the whole volume before the windows are cut,
    as training does.
    """
    volumes_hu = tf.convert_to_tensor(volumes_hu, tf.float32)
    spacing_mm = tf.convert_to_tensor(spacing_mm, tf.float32)
    with tf.control_dependencies([tf.debugging.assert_positive(spacing_mm,
                                                               message=SPACING_MESSAGE)]):
        volumes_hu = tf.identity(volumes_hu)
    grid = tf.unstack(tf.shape(volumes_hu)[1:4], num=3)
    if spec.mode == "patch":
        return _patch_probabilities(model, volumes_hu, spacing_mm, spec, inference, grid)
    x = resize_linear(volumes_hu[..., None], spec.size)[..., 0]

    def predict(windows):
        return window_probabilities(model, windows)

    if inference.tta_axes is not None:
        predict = mirrored(predict, inference.tta_axes)
    probabilities = predict(normalise(x, spec.intensity))
    return resize_linear(probabilities[..., None], grid)[..., 0]


def keras_predictor(model, spec: InputSpec, inference: Inference = DEFAULT_INFERENCE,
                    source="keras") -> Predictor:
    """A ``Predictor`` around a Keras model with the ``unet3d`` contract (logits [B,D,H,W,2])."""

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, None], tf.float32),
                                  tf.TensorSpec([3], tf.float32)])
    def predict(volumes, spacing_mm):
        return lesion_probabilities(model, volumes, spacing_mm, spec, inference)

    return Predictor(lambda hu, spacing: predict(hu[None], spacing)[0].numpy(), spec, source,
                     inference.tta_axes)


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


def savedmodel_predictor(version_dir, overlap=None, batch_size=None, tta_axes=None) -> Predictor:
    """A ``Predictor`` that runs an exported SavedModel's serving signature.

    An export applies its model as it was exported: a sliding-window ``overlap`` or
    ``batch_size`` (patch mode) or mirroring ``tta_axes`` other than the exported ones is refused
    rather than ignored (None: as exported).
    """
    version_dir = Path(version_dir)
    info_file = version_dir.parent / EXPORT_FILE
    info = read_export_info(version_dir)
    spec = _spec(info.get("input", {}), info_file)
    exported = dict(info.get("sliding_window", {}))
    exported["tta_axes"] = info.get("tta_axes")
    asked = {"overlap": overlap, "batch_size": batch_size}
    if spec.mode == "patch" and any(v is not None and exported.get(k) != v
                                    for k, v in asked.items()):
        raise ConfigError(
            f"this patch-mode export blends windows with overlap {exported.get('overlap')} and "
            f"batch size {exported.get('batch_size')}, fixed when it was exported; --overlap "
            "and --batch-size cannot change them (leave them out, or predict with the run "
            "folder)", info_file)
    if tta_axes is not None and list(tta_axes) != exported["tta_axes"]:
        mirroring = ("does not mirror" if exported["tta_axes"] is None
                     else f"mirrors along axes {exported['tta_axes']}")
        raise ConfigError(
            f"this export {mirroring} at test time, fixed when it was exported; --tta cannot "
            "change that (leave it out, export again with or without --tta, or predict with "
            "the run folder)", info_file)
    signature = tf.saved_model.load(str(version_dir)).signatures[SIGNATURE]
    takes_spacing = SIGNATURE_SPACING in signature.structured_input_signature[1]

    def probabilities(hu, spacing_mm):
        inputs = {SIGNATURE_INPUT: tf.constant(hu[None])}
        if takes_spacing:  # exports before tfcovseg's target spacings take the CT alone
            inputs[SIGNATURE_SPACING] = tf.constant(spacing_mm)
        return signature(**inputs)[SIGNATURE_OUTPUT][0].numpy()

    tta = exported["tta_axes"]
    return Predictor(probabilities, spec, str(version_dir), None if tta is None else tuple(tta))


def load_predictor(path, overlap=None, batch_size=None, tta_axes=None) -> Predictor:
    """A ``Predictor`` from a run folder or an export (folder or one version of it).

    ``overlap`` and ``batch_size`` of the sliding window (patch mode), ``tta_axes`` of
    test-time mirroring (0, 1, 2 = D, H, W); None: the defaults for a run (0.5, 1, no
    mirroring), what was exported for an export.
    """
    check_sliding_window(overlap, batch_size)
    check_tta_axes(tta_axes)
    path = Path(path)
    run = RunFolder(path)
    if run.is_run():
        model, info = load_run_model(path)
        inference = Inference(
            overlap=DEFAULT_INFERENCE.overlap if overlap is None else overlap,
            batch_size=DEFAULT_INFERENCE.batch_size if batch_size is None else batch_size,
            tta_axes=None if tta_axes is None else tuple(tta_axes))
        return keras_predictor(model, info.input, inference, source=str(path))
    version_dir = export_version_dir(path)
    if version_dir is not None:
        return savedmodel_predictor(version_dir, overlap, batch_size, tta_axes)
    raise TfcovsegError(
        f"neither a tfcovseg run ({run.info_file.name}, written by train) nor an export "
        f"({EXPORT_FILE}, written by export)",
        path,
    )


def _spec(data, where) -> InputSpec:
    """An ``InputSpec`` from a run's or an export's JSON; a bad one names the file."""
    try:
        return from_dict(InputSpec, data, "input")
    except ConfigError as err:
        raise ConfigError(err.problem, where) from None


def _patch_probabilities(model, volumes_hu, spacing_mm, spec: InputSpec, inference: Inference,
                         grid):
    x = volumes_hu
    if spec.spacing is not None:
        size = resampled_size(grid, spacing_mm, spec.spacing)
        with tf.control_dependencies([check_resampled_size(size)]):
            x = resize_linear(tf.identity(volumes_hu)[..., None], size)[..., 0]
    probabilities = sliding_window_probabilities(
        model, normalise(x, spec.intensity), spec.size, inference.overlap, inference.batch_size,
        inference.tta_axes)
    if spec.spacing is not None:
        probabilities = resize_linear(probabilities[..., None], grid)[..., 0]
    return probabilities
