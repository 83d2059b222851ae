"""One "predict a volume" callable, from a run folder, a SavedModel export or a Keras model.

``load_predictor(path)`` accepts an export (``tfcovseg_export.json`` next to TF Serving's
numbered version folders, see ``tfcovseg.infer.export``) or any segmentation model
``tfcovseg.load_model`` loads: a training run (``run.json``, see ``tfcovseg.rundir``), a
converted faimed3d U-Net, a 2D grid cell of a lesion experiment. It returns a ``Predictor``:
raw HU ``[D, H, W]`` and its voxel spacing (mm along D, H, W) in, lesion probabilities
``[D, H, W]`` on the same grid out.

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

- ``slices`` (a grid cell): the 2D network runs slice by slice with the bench's preprocessing
  (``tfcovseg.infer.slices``); the spacing is not used. A ``lesions_in_lungs`` cell takes the
  lung mask too: given to the ``Predictor`` call, or found by a ``lungs`` cell
  (``load_lung_model``) in the same graph.

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

from tfcovseg.bench import store
from tfcovseg.config import from_dict
from tfcovseg.data.intensity import normalise
from tfcovseg.errors import ConfigError, DataError, TfcovsegError
from tfcovseg.files import read_json_of_kind
from tfcovseg.infer.slices import SLICE_BATCH, in_plane_axes, lung_mask, slice_probabilities
from tfcovseg.loader import LoadedModel, NotAModel, load_model
from tfcovseg.models.sliding_window import (
    mirrored,
    sliding_window_probabilities,
    window_probabilities,
)
from tfcovseg.resize import check_resampled_size, resampled_size, resize_linear
from tfcovseg.rundir import InputSpec, SliceSpec
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
    whose voxels measure ``spacing_mm`` (D, H, W); ``lungs`` ([D, H, W], non-zero inside the
    lungs) for a predictor that ``takes_lungs`` (a ``lesions_in_lungs`` cell without a lung
    model)."""

    probabilities: Callable[[np.ndarray, np.ndarray, np.ndarray | None], np.ndarray]
    spec: InputSpec | SliceSpec
    source: str  # what was loaded, for reports
    tta_axes: tuple | None = None  # the test-time mirroring applied (None: none), for reports
    takes_lungs: bool = False

    def __call__(self, volume_hu, spacing_mm, lungs=None) -> np.ndarray:
        volume_hu = np.asarray(volume_hu, np.float32)
        spacing_mm = check_fits(self.spec, volume_hu.shape, spacing_mm)
        if self.takes_lungs:
            if lungs is None:
                raise DataError(f"{self.source} is a grid cell of the lesions_in_lungs "
                                "experiment: it segments lesions on lung-masked slices, so it "
                                "needs the lung mask (--lung-mask or --lung-model)")
            if np.shape(lungs) != volume_hu.shape:
                raise DataError(f"the lung mask's shape {list(np.shape(lungs))} is not the "
                                f"CT's {list(volume_hu.shape)}")
        return np.asarray(self.probabilities(volume_hu, spacing_mm, lungs), np.float32)


def check_fits(spec: InputSpec | SliceSpec, shape, spacing_mm, path=None) -> np.ndarray:
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


def lesion_probabilities(model, volumes_hu, spacing_mm, spec: InputSpec | SliceSpec,
                         inference: Inference = DEFAULT_INFERENCE, lungs=None,
                         lung_model: LoadedModel | None = None):
    """Raw HU ``[B, D, H, W]`` of voxel size ``spacing_mm`` ([3], D, H, W) -> lesion
    probabilities of the same shape, in TF ops (the spacing checked in the graph).

    A slice model (``SliceSpec``) of the ``lesions_in_lungs`` experiment takes ``lungs``
    ([B, D, H, W]) or, without them, the mask ``lung_model`` (a ``lungs`` cell) finds.

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
    if spec.mode == "slices":
        if lungs is None and lung_model is not None:
            lungs = lung_mask(lung_model.model, volumes_hu, lung_model.spec, inference.batch_size)
        return slice_probabilities(model, volumes_hu, spec, lungs, inference.batch_size,
                                   inference.tta_axes)
    if spec.mode == "patch":
        return _patch_probabilities(model, volumes_hu, spacing_mm, spec, inference, grid)
    x = resize_linear(volumes_hu[..., None], spec.size)[..., 0]

    def predict(windows):
        return window_probabilities(model, windows)

    if inference.tta_axes is not None:
        predict = mirrored(predict, inference.tta_axes)
    probabilities = predict(normalise(x, spec.intensity))
    return resize_linear(probabilities[..., None], grid)[..., 0]


def keras_predictor(model, spec: InputSpec | SliceSpec, inference: Inference = DEFAULT_INFERENCE,
                    source="keras", lung_model: LoadedModel | None = None) -> Predictor:
    """A ``Predictor`` around a Keras model: one with the ``unet3d`` contract (logits
    [B, D, H, W, 2]) for an ``InputSpec``, a grid cell's 2D network for a ``SliceSpec``."""
    volumes = tf.TensorSpec([None, None, None, None], tf.float32)
    spacing = tf.TensorSpec([3], tf.float32)
    takes_lungs = needs_lungs(spec) and lung_model is None

    if takes_lungs:
        @tf.function(input_signature=[volumes, spacing, tf.TensorSpec([None] * 4, tf.bool)])
        def predict(batch, spacing_mm, lungs):
            return lesion_probabilities(model, batch, spacing_mm, spec, inference, lungs=lungs)

        def probabilities(hu, spacing_mm, lungs):
            return predict(hu[None], spacing_mm, np.asarray(lungs)[None] > 0)[0].numpy()
    else:
        @tf.function(input_signature=[volumes, spacing])
        def predict(batch, spacing_mm):
            return lesion_probabilities(model, batch, spacing_mm, spec, inference,
                                        lung_model=lung_model)

        def probabilities(hu, spacing_mm, lungs):
            return predict(hu[None], spacing_mm)[0].numpy()

    return Predictor(probabilities, spec, source, applied_tta_axes(spec, inference.tta_axes),
                     takes_lungs)


def applied_tta_axes(spec: InputSpec | SliceSpec, tta_axes) -> tuple | None:
    """The mirroring axes that are applied: all of them for a 3D model, H and W for a slice
    model (``tfcovseg.infer.slices.in_plane_axes``)."""
    return in_plane_axes(tta_axes) if spec.mode == "slices" else tta_axes


def needs_lungs(spec: InputSpec | SliceSpec) -> bool:
    """Whether the model segments lung-masked input (a ``lesions_in_lungs`` grid cell)."""
    return spec.mode == "slices" and spec.experiment == "lesions_in_lungs"


def check_lung_model_input(takes_lungs: bool, lung_model) -> None:
    """Refuse a ``lung_model`` given as the input mask of a model that ``takes_lungs`` not
    (one that takes the whole CT, or an export that finds its lungs itself)."""
    if lung_model is not None and not takes_lungs:
        raise ConfigError("--lung-model is the input mask of a lesions_in_lungs grid cell; this "
                          "model takes the whole CT", lung_model)


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
    exported = info.get("sliding_window", {})
    exported_tta = None if info.get("tta_axes") is None else tuple(info["tta_axes"])
    check_window_options(spec, overlap)
    asked = {"overlap": overlap, "batch_size": batch_size}
    if spec.mode != "resize" and any(v is not None and exported.get(k) != v
                                     for k, v in asked.items()):
        raise ConfigError(
            f"this {spec.mode}-mode export runs its model with overlap {exported.get('overlap')} "
            f"and batch size {exported.get('batch_size')}, fixed when it was exported; --overlap "
            "and --batch-size cannot change them (leave them out, or predict with the model "
            "itself)", info_file)
    if tta_axes is not None and applied_tta_axes(spec, tuple(tta_axes)) != exported_tta:
        mirroring = ("does not mirror" if exported_tta is None
                     else f"mirrors along axes {list(exported_tta)}")
        raise ConfigError(
            f"this export {mirroring} at test time, fixed when it was exported; --tta cannot "
            "change that (leave it out, export again with or without --tta, or predict with "
            "the model itself)", info_file)
    signature = tf.saved_model.load(str(version_dir)).signatures[SIGNATURE]
    takes_spacing = SIGNATURE_SPACING in signature.structured_input_signature[1]

    def probabilities(hu, spacing_mm, lungs):  # a lesions_in_lungs export finds its own lungs
        inputs = {SIGNATURE_INPUT: tf.constant(hu[None])}
        if takes_spacing:  # exports before tfcovseg's target spacings take the CT alone
            inputs[SIGNATURE_SPACING] = tf.constant(spacing_mm)
        return signature(**inputs)[SIGNATURE_OUTPUT][0].numpy()

    return Predictor(probabilities, spec, str(version_dir), exported_tta)


def load_predictor(path, overlap=None, batch_size=None, tta_axes=None) -> Predictor:
    """A ``Predictor`` from an export (folder or one version of it) or a model
    ``tfcovseg.load_model`` loads (a run folder, a converted faimed3d U-Net, a lesion grid
    cell).

    ``overlap`` and ``batch_size`` of the sliding window (patch mode; a grid cell's
    ``batch_size`` is slices per call), ``tta_axes`` of test-time mirroring (0, 1, 2 = D, H,
    W); None: the defaults for a model (0.5, 1 window or ``SLICE_BATCH`` slices, no
    mirroring), what was exported for an export.
    """
    check_sliding_window(overlap, batch_size)
    check_tta_axes(tta_axes)
    version_dir = export_version_dir(path)
    if version_dir is not None:
        return savedmodel_predictor(version_dir, overlap, batch_size, tta_axes)
    loaded = load_segmenter(path)
    return keras_predictor(loaded.model, loaded.spec,
                           inference_for(loaded.spec, overlap, batch_size, tta_axes),
                           source=str(path))


def inference_for(spec: InputSpec | SliceSpec, overlap=None, batch_size=None,
                  tta_axes=None) -> Inference:
    """The ``Inference`` of the given options, the defaults for the others."""
    check_window_options(spec, overlap)
    default_batch = SLICE_BATCH if spec.mode == "slices" else DEFAULT_INFERENCE.batch_size
    return Inference(overlap=DEFAULT_INFERENCE.overlap if overlap is None else overlap,
                     batch_size=default_batch if batch_size is None else batch_size,
                     tta_axes=None if tta_axes is None else tuple(tta_axes))


def check_window_options(spec: InputSpec | SliceSpec, overlap) -> None:
    """Refuse a sliding-window ``overlap`` for a grid cell, which sees whole slices."""
    if spec.mode == "slices" and overlap is not None:
        raise ConfigError("--overlap is the sliding window of patch-mode U-Nets; a grid cell "
                          "runs on whole slices (--batch-size: slices per call)")


def load_segmenter(path) -> LoadedModel:
    """A model that segments lesions, from ``path``; one error naming the path otherwise."""
    try:
        loaded = load_model(path)
    except NotAModel:
        raise TfcovsegError(
            "not a model tfcovseg can predict with; expected a training run folder (with "
            f"run.json); an export ({EXPORT_FILE}, written by export); a U-Net converted by "
            "convert-weights --faimed3d (an .h5 with its .json sidecar); or a 2D grid cell of a "
            f"lesion experiment (BENCH_DIR/{store.CELLS_DIR}/<cell id>.json)", path) from None
    if loaded.kind == "torchvision_encoder":
        raise TfcovsegError("an R3D-18 encoder, not a segmentation model: train a U-Net from it "
                            "(model.encoder_weights) and predict with the run", path)
    if loaded.spec.mode == "slices" and loaded.spec.experiment == "lungs":
        raise TfcovsegError("a grid cell of the lungs experiment segments lungs, not lesions: "
                            "give it as --lung-model (the lung mask of the report)", path)
    return loaded


def load_lung_model(path) -> LoadedModel:
    """A grid cell of the ``lungs`` experiment, for ``--lung-model``; refused otherwise."""
    try:
        loaded = load_model(path)
    except NotAModel:
        loaded = None
    if loaded is None or loaded.spec.mode != "slices" or loaded.spec.experiment != "lungs":
        raise TfcovsegError("--lung-model must be a grid cell of the lungs experiment "
                            f"(BENCH_DIR/{store.CELLS_DIR}/lungs-...)", path)
    return loaded


def load_lung_predictor(path, batch_size=None) -> Predictor:
    """A ``Predictor`` of the lung probabilities the ``lungs`` cell at ``path`` finds
    (``batch_size`` slices per call; None: ``SLICE_BATCH``)."""
    loaded = load_lung_model(path)
    return keras_predictor(loaded.model, loaded.spec, inference_for(loaded.spec,
                                                                    batch_size=batch_size),
                           source=str(path))


def _spec(data, where) -> InputSpec | SliceSpec:
    """An ``InputSpec`` (a ``SliceSpec`` for mode slices) from an export's JSON; a bad one
    names the file."""
    kind = SliceSpec if data.get("mode") == "slices" else InputSpec
    try:
        return from_dict(kind, data, "input")
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
