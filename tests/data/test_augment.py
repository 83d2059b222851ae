"""3D augmentations: alignment of image and label, determinism, geometry and ranges."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tfcovseg.config import from_dict
from tfcovseg.data.augment import (
    augment3d,
    homography_from_points,
    resample_nearest,
    rotation_matrix,
    source_coordinates,
)
from tfcovseg.errors import TfcovsegError
from tfcovseg.settings.data import Augment3D

SHAPE = (8, 24, 24)
NOTHING = Augment3D(flip=0, rotation=0, perspective=0, brightness=0, contrast=0, noise=0)
GEOMETRIC = ["flip", "rotation", "perspective"]
INTENSITY = ["brightness", "contrast", "noise"]


def marker_pair():
    """An image that equals its label: a block marker in an empty volume, plus a second block."""
    label = np.zeros((*SHAPE, 1), np.int32)
    label[2:6, 5:14, 8:19] = 1
    label[1:3, 16:21, 3:7] = 1
    return label.astype(np.float32), label


def only(name, **extra):
    return dataclasses.replace(NOTHING, **{name: 1.0}, **extra)


def run(cfg, seed=(0, 7), pair=None):
    image, label = marker_pair() if pair is None else pair
    out = augment3d(tf.constant(image), tf.constant(label), tf.constant(seed, tf.int64), cfg)
    return out[0].numpy(), out[1].numpy()


def dice(a, b):
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


@pytest.mark.parametrize("name", GEOMETRIC)
def test_geometric_augmentation_moves_image_and_label_together(name):
    for seed in range(4):
        image, label = run(only(name), seed=(seed, 1))
        assert dice(image[..., 0] > 0.5, label[..., 0] > 0) > 0.85
        assert set(np.unique(label)) <= {0, 1}


@pytest.mark.parametrize("name", GEOMETRIC)
def test_geometric_augmentation_changes_the_volume(name):
    original, _ = marker_pair()
    changed = [not np.array_equal(run(only(name), seed=(s, 2))[1], original) for s in range(4)]
    assert any(changed)


def test_flip_is_an_exact_mirror_of_image_and_label():
    image, label = run(only("flip", flip_axes=(2,)))
    original, original_label = marker_pair()
    np.testing.assert_array_equal(image, original[:, :, ::-1])
    np.testing.assert_array_equal(label, original_label[:, :, ::-1])


def test_zero_degree_rotation_resamples_to_the_identity():
    image, label = run(only("rotation", rotation_degrees=(0.0, 0.0, 0.0)))
    original, original_label = marker_pair()
    np.testing.assert_allclose(image, original, atol=1e-5)
    np.testing.assert_array_equal(label, original_label)


def test_quarter_turn_about_the_slice_axis_is_rot90_of_each_slice():
    volume = np.random.default_rng(0).integers(0, 9, size=(*SHAPE, 1)).astype(np.int32)
    rotation = rotation_matrix(tf.constant(0), tf.constant(np.pi / 2, tf.float32))
    coords = source_coordinates(tf.constant(SHAPE), rotation, tf.eye(3, dtype=tf.float64))
    got = resample_nearest(tf.constant(volume), coords).numpy()
    np.testing.assert_array_equal(got, np.rot90(volume, k=1, axes=(1, 2)))


def test_homography_maps_the_four_points():
    source = tf.constant([[0, 0], [9, 1], [8, 7], [1, 9]], tf.float64)
    target = tf.constant([[2, 1], [7, 0], [9, 9], [0, 6]], tf.float64)
    h = homography_from_points(source, target).numpy()
    points = np.concatenate([source.numpy(), np.ones((4, 1))], axis=1) @ h.T
    np.testing.assert_allclose(points[:, :2] / points[:, 2:], target.numpy(), atol=1e-8)


@pytest.mark.parametrize("name", INTENSITY)
def test_intensity_augmentation_leaves_label_and_geometry_alone(name):
    original, original_label = marker_pair()
    pair = (original * 0.5 + 0.25, original_label)
    image, label = run(only(name), pair=pair)
    np.testing.assert_array_equal(label, original_label)
    assert not np.allclose(image, pair[0])


@pytest.mark.parametrize("name", ["brightness", "contrast"])
def test_brightness_and_contrast_stay_in_the_original_range(name):
    pair = (
        np.linspace(0, 1, np.prod(SHAPE), dtype=np.float32).reshape(*SHAPE, 1),
        marker_pair()[1],
    )
    for seed in range(5):
        image, _ = run(only(name), seed=(seed, 3), pair=pair)
        assert image.min() >= 0.0 and image.max() <= 1.0


def test_same_seed_same_result_and_other_seed_differs():
    cfg = Augment3D(flip=1, rotation=1, perspective=1, brightness=1, contrast=1, noise=1)
    a, b, c = run(cfg, seed=(1, 2)), run(cfg, seed=(1, 2)), run(cfg, seed=(1, 3))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_disabled_augmentation_returns_the_input():
    original, original_label = marker_pair()
    image, label = run(Augment3D(enabled=False))
    np.testing.assert_array_equal(image, original)
    np.testing.assert_array_equal(label, original_label)


def test_bad_probability_in_config_is_a_clear_error():
    with pytest.raises(TfcovsegError, match="rotation"):
        from_dict(Augment3D, {"rotation": 1.5}, "augment")
    with pytest.raises(TfcovsegError, match="unknown key augment.warp"):
        from_dict(Augment3D, {"warp": 0.1}, "augment")
