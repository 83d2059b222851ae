"""The 2D slice pipeline: targets of the three experiments, normalisation, order, augmentation."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tfcovseg.config import from_dict
from tfcovseg.data.augment2d import augment2d, rotation_scale_transform, warp
from tfcovseg.data.pipeline2d import case_slices, count_slices, slice_dataset
from tfcovseg.errors import TfcovsegError
from tfcovseg.io.nifti import read_volume
from tfcovseg.settings.data import Augment2D, Pipeline2D

SMALL = Pipeline2D(size=(32, 32))


def volumes(dataset, case):
    return {
        key: read_volume(dataset.path(getattr(case, key))).array
        for key in ("image", "label", "lung")
    }


def native(dataset, case):
    """A config that keeps the case's own slice size, so no resizing is involved."""
    shape = read_volume(dataset.path(case.image)).array.shape
    return dataclasses.replace(SMALL, size=shape[1:])


def stack(ds):
    images, masks = zip(*[(i.numpy(), m.numpy()) for i, m in ds])
    return np.concatenate(images)[..., 0], np.concatenate(masks)[..., 0]


@pytest.mark.parametrize("experiment", ["lungs", "lesions", "lesions_in_lungs"])
def test_slices_are_batched_at_the_configured_size(phantom_dataset, experiment):
    ds = slice_dataset(
        phantom_dataset,
        phantom_dataset.cases[:2],
        SMALL,
        experiment=experiment,
        batch_size=5,
        training=True,
        seed=0,
    )
    batches = list(ds)
    total = count_slices(phantom_dataset, phantom_dataset.cases[:2], experiment=experiment)
    assert sum(int(i.shape[0]) for i, _ in batches) == total
    image, mask = batches[0]
    assert image.shape == (5, 32, 32, 1) and mask.shape == (5, 32, 32, 1)
    assert image.dtype == tf.float32 and mask.dtype == tf.float32
    assert set(np.unique(mask.numpy())) <= {0.0, 1.0}


def test_lungs_and_lesions_targets_and_normalisation(marker_dataset):
    case = marker_dataset.cases[0]
    arrays = volumes(marker_dataset, case)
    cfg = native(marker_dataset, case)
    image, lungs = stack(case_slices(marker_dataset, case, cfg, experiment="lungs"))
    np.testing.assert_allclose(image, (arrays["image"] + 500.0) / 500.0, atol=1e-6)
    np.testing.assert_array_equal(lungs, arrays["lung"] > 0)
    _, lesions = stack(case_slices(marker_dataset, case, cfg, experiment="lesions"))
    np.testing.assert_array_equal(lesions, arrays["label"])


def test_lesions_in_lungs_masks_the_normalised_input(marker_dataset):
    case = marker_dataset.cases[1]
    arrays = volumes(marker_dataset, case)
    image, lesions = stack(
        case_slices(
            marker_dataset, case, native(marker_dataset, case), experiment="lesions_in_lungs"
        )
    )
    lung = arrays["lung"] > 0
    np.testing.assert_allclose(
        image, np.where(lung, (arrays["image"] + 500.0) / 500.0, 0.0), atol=1e-6
    )
    np.testing.assert_array_equal(lesions, arrays["label"])


def test_only_positive_keeps_slices_with_target_and_count_agrees(marker_dataset):
    cases = marker_dataset.cases
    ds = slice_dataset(
        marker_dataset,
        cases,
        SMALL,
        experiment="lesions",
        batch_size=4,
        training=False,
        only_positive=True,
    )
    _, masks = stack(ds)
    expected = count_slices(marker_dataset, cases, experiment="lesions", only_positive=True)
    assert len(masks) == expected == 3 * len(cases)  # each marker spans 3 slices
    assert all(m.any() for m in masks)


def test_training_is_deterministic_per_seed(phantom_dataset):
    def first_batch(seed):
        ds = slice_dataset(
            phantom_dataset,
            phantom_dataset.cases[:1],
            SMALL,
            experiment="lesions",
            batch_size=4,
            training=True,
            seed=seed,
        )
        return next(iter(ds))[0].numpy()

    np.testing.assert_array_equal(first_batch(1), first_batch(1))
    assert not np.array_equal(first_batch(1), first_batch(2))


def test_augmented_marker_stays_on_its_mask():
    mask = np.zeros((40, 40, 1), np.float32)
    mask[8:20, 12:30] = 1.0
    for seed in range(6):
        image, out = augment2d(
            tf.constant(mask), tf.constant(mask), tf.constant([seed, 5], tf.int64), Augment2D()
        )
        image, out = image.numpy() > 0.5, out.numpy() > 0.5
        assert 2 * (image & out).sum() / (image.sum() + out.sum()) > 0.9


def test_half_turn_without_scaling_is_a_point_mirror():
    x = tf.constant(np.random.default_rng(0).normal(size=(9, 12, 1)).astype(np.float32))
    transform = rotation_scale_transform(tf.shape(x)[:2], tf.constant(np.pi), tf.constant(1.0))
    np.testing.assert_allclose(
        warp(x, transform, "BILINEAR").numpy(), x.numpy()[::-1, ::-1], atol=1e-4
    )


def test_shrinking_pads_with_zero():
    x = tf.ones((16, 16, 1))
    transform = rotation_scale_transform(tf.shape(x)[:2], tf.constant(0.0), tf.constant(0.5))
    out = warp(x, transform, "NEAREST").numpy()
    assert out[0, 0, 0] == 0.0 and out[8, 8, 0] == 1.0


def test_unknown_experiment_and_bad_augment_config_are_errors(phantom_dataset):
    with pytest.raises(ValueError, match="experiment must be one of"):
        slice_dataset(
            phantom_dataset, phantom_dataset.cases, SMALL, experiment="vessels", training=False
        )
    with pytest.raises(TfcovsegError, match="scale"):
        from_dict(Pipeline2D, {"augment": {"scale": [0.0, 1.0]}}, "data")
