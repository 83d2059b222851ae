"""The 2D ``tf.data`` pipeline of the benchmark grid (Bizopoulos et al.): axial slices.

Every axial slice of the cases (in case order, then inferior to superior) is normalised with
mean -500 / std 500 HU and resized to ``size`` (512x512; bilinear with ``align_corners=True``
for images, PyTorch's legacy nearest rule for masks, as the 3D pipeline does). Targets of the
three experiments (PAPERS.md section 2):

- ``lungs``: the lung mask (any non-zero value: left and right merged).
- ``lesions`` ('A'): the lesion mask (label classes merged by the converters).
- ``lesions_in_lungs`` ('B'): the lesion mask, with the lung mask applied to the input: the
  *normalised* image is multiplied by the lung mask, so outside the lungs the input is 0
  (the normalisation mean, -500 HU) and inside it is unchanged.

``only_positive`` keeps the slices whose target (before resizing) is non-empty.
Training shuffles the slices (seeded, redrawn every pass) and augments them
(``augment2d``); otherwise order is fixed and there is no augmentation.
"""


import tensorflow as tf

from tfcovseg.data.augment2d import augment2d
from tfcovseg.data.intensity import normalise
from tfcovseg.data.reader import case_dataset, check_cases, read_case
from tfcovseg.io.manifest import Case, Dataset
from tfcovseg.resize import resize_linear, resize_nearest
from tfcovseg.settings.data import Experiment, Pipeline2D

TARGET_KEY = {"lungs": "lung", "lesions": "label", "lesions_in_lungs": "label"}
MEAN_HU, STD_HU = -500.0, 500.0  # Bizopoulos et al.'s normalisation


def experiment_keys(experiment: str) -> tuple:
    """The case files an experiment reads."""
    if experiment not in TARGET_KEY:
        raise ValueError(f"experiment must be one of {', '.join(TARGET_KEY)}, got {experiment!r}")
    if experiment == "lesions_in_lungs":
        return ("image", "label", "lung")
    return ("image", TARGET_KEY[experiment])


def slice_dataset(
    dataset: Dataset,
    cases: list,
    cfg: Pipeline2D,
    *,
    experiment: Experiment,
    batch_size: int = 2,
    training: bool,
    seed: int = 0,
    only_positive: bool = False,
) -> tf.data.Dataset:
    """Batches ``(image float32 [B, H, W, 1], mask float32 [B, H, W, 1])`` of axial slices.

    One pass is one epoch; the last batch may be smaller. See the module doc for targets.
    """
    parallel = cfg.num_parallel or tf.data.AUTOTUNE
    volumes = case_dataset(dataset, cases, experiment_keys(experiment), parallel)
    slices = volumes.map(
        lambda case: normalised_slices(case, cfg, experiment), num_parallel_calls=parallel
    ).unbatch()
    if only_positive:
        slices = slices.filter(lambda image, mask, positive: positive)
    slices = slices.map(lambda image, mask, positive: (image, mask))
    if cfg.cache:
        slices = slices.cache()  # masks stay uint8 here: half the memory of float32 pairs
    if training:
        slices = slices.shuffle(cfg.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        slices = tf.data.Dataset.zip((slices, draws)).map(
            lambda pair, draw: augment2d(
                pair[0], _as_float(pair[1]), tf.stack([tf.cast(seed, tf.int64), draw]), cfg.augment
            ),
            num_parallel_calls=parallel,
        )
    else:
        slices = slices.map(lambda image, mask: (image, _as_float(mask)))
    return slices.batch(batch_size, drop_remainder=False).prefetch(tf.data.AUTOTUNE)


def case_slices(
    dataset: Dataset, case: Case, cfg: Pipeline2D, *, experiment: Experiment, batch_size: int = 2
) -> tf.data.Dataset:
    """All slices of one test volume, inferior to superior, unaugmented."""
    return slice_dataset(
        dataset, [case], cfg, experiment=experiment, batch_size=batch_size, training=False
    )


def normalised_slices(case: dict, cfg: Pipeline2D, experiment: str):
    """A case's ``(images [D, H, W, 1], targets uint8 [D, H, W, 1], positive [D])``, resized."""
    image = normalise(case["image"], cfg.intensity)
    target = case[TARGET_KEY[experiment]]
    if experiment == "lesions_in_lungs":
        image = image * tf.cast(case["lung"], tf.float32)
    positive = tf.reduce_any(target > 0, axis=[1, 2])
    depth = tf.shape(image)[0]
    size = (depth, *cfg.size)
    image = resize_linear(image[..., None], size)
    target = resize_nearest(target[..., None], size)
    image.set_shape([None, *cfg.size, 1])
    target.set_shape([None, *cfg.size, 1])
    return image, target, positive


def _as_float(mask):
    return tf.cast(mask, tf.float32)


def count_slices(
    dataset: Dataset,
    cases: list,
    *,
    experiment: Experiment = "lesions",
    only_positive: bool = False,
) -> int:
    """How many slices ``slice_dataset`` yields per pass (for progress bars and step counts).

    Without ``only_positive`` this reads headers (and, once per file, the masks' values:
    ``check_cases``); with it, the target masks.
    """
    keys = experiment_keys(experiment)
    shapes = check_cases(dataset, cases, keys)
    if not only_positive:
        return sum(shape[0] for shape in shapes)
    target_key = TARGET_KEY[experiment]
    return sum(
        int(read_case(dataset, case, (target_key,))[target_key].any(axis=(1, 2)).sum())
        for case in cases
    )
