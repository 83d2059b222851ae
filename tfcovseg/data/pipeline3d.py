"""The 3D ``tf.data`` pipeline: prepared dataset -> ``(image, label)`` batches for the U-Net.

Two sampling modes:

- ``resize`` (the paper): the whole volume is resized to ``size`` (18x112x112 in stage 1,
  20x256x256 in stage 2): image trilinear with ``align_corners=True``, label with PyTorch's
  legacy nearest rule, as faimed3d does; then the intensity scaling (per-volume min-max by
  default) on the resized volume.
- ``patch``: with a target ``spacing`` (nnU-Net's plan; ``tfcovseg train`` uses the median
  spacing of the training cases unless ``data.target_spacing`` says otherwise) every case is
  first resampled to that voxel size (``tfcovseg.resize``: image trilinear, label nearest on the
  same ``align_corners`` positions; each case's spacing from its image header); then the
  intensity scaling runs on the whole volume, then random ``patch_size`` patches are cut (``patches_per_volume`` per case and pass); a volume smaller
  than the patch is padded (image with its minimum, label with 0). A fraction
  ``lesion_fraction`` of patches is centred on a lesion voxel drawn uniformly; the rest, and
  all patches of a case without lesions, start uniformly at random.

Order: decode (parallel) -> resize, or resample, scale and pad to the patch size -> optional in-memory
``cache`` (of that result, so later passes skip decoding) -> shuffle (training) -> cut patches
-> augment (training) -> batch -> prefetch. Every random draw comes from a per-element seed
derived from ``seed``; the same seed gives the same batches pass for pass, and each pass of a
training dataset reshuffles and redraws.
"""


import numpy as np
import tensorflow as tf

from tfcovseg.data.augment import augment3d
from tfcovseg.data.intensity import normalise
from tfcovseg.data.reader import case_dataset
from tfcovseg.errors import DataError
from tfcovseg.io.manifest import Dataset
from tfcovseg.io.nifti import read_grid, spacing_mm
from tfcovseg.resize import resampled_size, resize_linear, resize_nearest
from tfcovseg.settings.data import Pipeline3D

SPATIAL_RANK = 3


def volume_dataset(
    dataset: Dataset,
    cases: list,
    cfg: Pipeline3D,
    *,
    batch_size: int,
    training: bool,
    seed: int = 0,
    with_ids: bool = False,
) -> tf.data.Dataset:
    """Batches ``(image float32 [B, D, H, W, 1], label int32 [B, D, H, W, 1])`` of ``cases``.

    ``training``: shuffle, augment, and redraw every pass; otherwise the cases' order and no
    augmentation (patch mode then cuts the same patches every pass). One pass is one epoch
    (no repeat); the last batch may be smaller. ``with_ids`` adds the case ids (string [B]) as
    a third item, for per-volume metrics.
    """
    parallel = cfg.num_parallel or tf.data.AUTOTUNE
    volumes = decoded_volumes(dataset, cases, cfg, parallel)
    if training:
        volumes = volumes.shuffle(len(cases), seed=seed, reshuffle_each_iteration=True)
    if cfg.mode == "patch":
        volumes = volumes.flat_map(
            lambda case: tf.data.Dataset.from_tensors(case).repeat(cfg.patches_per_volume)
        )
    draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=training)
    elements = tf.data.Dataset.zip((volumes, draws)).map(
        lambda case, draw: sample_case(
            case, tf.stack([tf.cast(seed, tf.int64), draw]), cfg, training
        ),
        num_parallel_calls=parallel,
    )
    if not with_ids:
        elements = elements.map(lambda image, label, case_id: (image, label))
    return elements.batch(batch_size, drop_remainder=False).prefetch(tf.data.AUTOTUNE)


def whole_volume_dataset(dataset: Dataset, cases: list, cfg: Pipeline3D) -> tf.data.Dataset:
    """Patch mode's tuning data: ``(image, label int32)`` whole volumes, one per batch.

    Scaled (and padded to at least the patch size) as training scales them before it cuts
    patches; for a sliding-window evaluation (``BestDiceCheckpoint(window=...)``).
    """
    volumes = decoded_volumes(dataset, cases, cfg, cfg.num_parallel or tf.data.AUTOTUNE)
    volumes = volumes.map(lambda case: (case["image"], tf.cast(case["label"], tf.int32)))
    return volumes.batch(1).prefetch(tf.data.AUTOTUNE)


def decoded_volumes(dataset: Dataset, cases: list, cfg: Pipeline3D, parallel) -> tf.data.Dataset:
    """Decoded cases with their ``spacing_mm`` through ``fit_case_to_pipeline``, kept in memory
    after the first pass with ``cache``."""
    volumes = case_dataset(dataset, cases, ("image", "label"), parallel)
    spacings = case_spacings(dataset, cases)
    if cfg.mode == "patch" and cfg.spacing is not None:
        _check_resampled_sizes(dataset, cases, spacings, cfg.spacing)
    spacings = tf.data.Dataset.from_tensor_slices(spacings)
    volumes = tf.data.Dataset.zip((volumes, spacings)).map(
        lambda case, spacing: {**case, "spacing_mm": spacing})
    volumes = volumes.map(lambda case: fit_case_to_pipeline(case, cfg), num_parallel_calls=parallel)
    return volumes.cache() if cfg.cache else volumes


def case_spacings(dataset: Dataset, cases: list) -> np.ndarray:
    """The voxel size (mm, D H W) of each case's image, ``[cases, 3]``, from the headers;
    a voxel size that is not positive is refused, naming the file."""
    spacings = []
    for case in cases:
        path = dataset.path(case.image)
        spacing = spacing_mm(read_grid(path)[1])
        if not all(np.isfinite(s) and s > 0 for s in spacing):
            raise DataError(f"case {case.id!r}: voxel spacing {list(spacing)} mm in the header, "
                            "expected 3 positive sizes (D, H, W)", path)
        spacings.append(spacing)
    return np.array(spacings, np.float64).reshape(-1, 3)


def median_spacing(dataset: Dataset, cases: list) -> tuple:
    """The median voxel size (mm) per axis, D H W, of ``cases``: nnU-Net's target spacing."""
    return tuple(float(s) for s in np.median(case_spacings(dataset, cases), axis=0))


def fit_case_to_pipeline(case: dict, cfg: Pipeline3D) -> dict:
    """Resize (resize mode) or resample to the target spacing and pad to the patch size (patch
    mode), and scale intensities.

    Adds the channel axis; this is what ``cache`` keeps.
    """
    image = case["image"][..., None]
    label = case["label"][..., None]
    if cfg.mode == "resize":
        image = resize_linear(image, cfg.size)
        label = resize_nearest(label, cfg.size)
    elif cfg.spacing is not None:
        size = resampled_size(tf.shape(image)[:SPATIAL_RANK], case["spacing_mm"], cfg.spacing)
        image = resize_linear(image, size)
        label = resize_nearest(label, size, align_corners=True)
    image = normalise(image[..., 0], cfg.intensity)[..., None]
    if cfg.mode == "patch":
        image, label = pad_to_patch(image, label, tf.constant(cfg.patch_size, tf.int32))
    return {"id": case["id"], "image": image, "label": label}


def sample_case(case: dict, seed, cfg: Pipeline3D, training: bool):
    """Cut a patch (patch mode) and augment (training): ``(image, label int32, id)``."""
    image, label = case["image"], case["label"]
    if cfg.mode == "patch":
        image, label = random_patch(
            image, label, tf.random.experimental.stateless_fold_in(seed, 0), cfg
        )
        shape = (*cfg.patch_size, 1)
    else:
        shape = (*cfg.size, 1)
    label = tf.cast(label, tf.int32)
    if training:
        image, label = augment3d(
            image, label, tf.random.experimental.stateless_fold_in(seed, 1), cfg.augment
        )
    image.set_shape(shape)
    label.set_shape(shape)
    return image, label, case["id"]


def random_patch(image, label, seed, cfg: Pipeline3D):
    """A ``cfg.patch_size`` patch of ``image`` / ``label`` ([D, H, W, 1], at least patch-sized).

    See the module doc for how the start is drawn.
    """
    patch = tf.constant(cfg.patch_size, tf.int32)
    shape = tf.shape(image)[:SPATIAL_RANK]
    room = shape - patch + 1  # number of valid start positions per axis
    draws = tf.random.stateless_uniform([SPATIAL_RANK + 2], seed)
    uniform_start = tf.minimum(
        tf.cast(tf.floor(draws[:SPATIAL_RANK] * tf.cast(room, tf.float32)), tf.int32), room - 1
    )

    def lesion_start():
        # searched only for lesion-centred draws: tf.where scans the whole volume
        lesions = tf.cast(tf.where(label[..., 0] > 0), tf.int32)
        count = tf.shape(lesions)[0]
        pick = tf.cast(draws[SPATIAL_RANK + 1] * tf.cast(count, tf.float32), tf.int32)
        return tf.cond(
            count > 0,
            lambda: tf.clip_by_value(
                lesions[tf.minimum(pick, count - 1)] - patch // 2, 0, room - 1
            ),
            lambda: uniform_start,
        )

    start = tf.cond(draws[SPATIAL_RANK] < cfg.lesion_fraction, lesion_start, lambda: uniform_start)
    begin = tf.concat([start, [0]], 0)
    size = tf.concat([patch, [-1]], 0)
    return tf.slice(image, begin, size), tf.slice(label, begin, size)


def pad_to_patch(image, label, patch):
    """Pad ``image`` (with its minimum) and ``label`` (with 0) to at least ``patch`` per axis."""
    missing = tf.maximum(patch - tf.shape(image)[:SPATIAL_RANK], 0)
    before = missing // 2
    paddings = tf.concat([tf.stack([before, missing - before], axis=1), [[0, 0]]], 0)
    image = tf.pad(image, paddings, constant_values=tf.reduce_min(image))
    return image, tf.pad(label, paddings)


def _check_resampled_sizes(dataset: Dataset, cases: list, spacings, target) -> None:
    """Refuse a case thinner than half a voxel of the ``target`` spacing along an axis."""
    for case, spacing in zip(cases, spacings):
        path = dataset.path(case.image)
        shape = read_grid(path)[0]
        size = [int(n) for n in resampled_size(shape, spacing, target)]
        if min(size) < 1:
            raise DataError(f"case {case.id!r} ({list(shape)} voxels of "
                            f"{[round(float(v), 4) for v in spacing]} mm) is thinner than half a "
                            f"voxel of the target spacing {list(target)} mm along an axis", path)
