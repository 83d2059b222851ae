"""The 3D pipeline: shapes, dtypes, ranges, order, determinism, patches, bad input."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tfcovseg.config import from_dict, load_config
from tfcovseg.data.pipeline3d import median_spacing, volume_dataset, whole_volume_dataset
from tfcovseg.errors import ConfigError, DataError, TfcovsegError
from tfcovseg.io.manifest import Case, Dataset, case_files, write_dataset
from tfcovseg.io.nifti import read_volume, write_volume
from tfcovseg.resize import resize_linear
from tfcovseg.settings.data import Augment3D, Intensity, Pipeline3D
from tfcovseg.settings.train import Stage, TrainConfig, pipeline_config

SIZE = (6, 16, 16)
GEOMETRY_ONLY = Augment3D(flip=1, rotation=1, perspective=1, brightness=0, contrast=0, noise=0)


def collect(ds):
    return [tuple(np.asarray(x) for x in batch) for batch in ds]


def test_resize_mode_yields_paper_layout_batches(phantom_dataset):
    cfg = Pipeline3D(size=SIZE)
    batches = collect(
        volume_dataset(
            phantom_dataset, phantom_dataset.cases, cfg, batch_size=3, training=True, seed=0
        )
    )
    assert [b[0].shape for b in batches] == [(3, *SIZE, 1), (1, *SIZE, 1)]
    for image, label in batches:
        assert image.dtype == np.float32 and label.dtype == np.int32
        assert set(np.unique(label)) <= {0, 1}


def test_validation_order_follows_cases_and_scales_each_volume_to_unit_range(phantom_dataset):
    cases = phantom_dataset.cases[::-1]
    ds = volume_dataset(
        phantom_dataset, cases, Pipeline3D(size=SIZE), batch_size=2, training=False, with_ids=True
    )
    batches = collect(ds)
    ids = [i.decode() for b in batches for i in b[2]]
    assert ids == [c.id for c in cases]
    for image, _, _ in batches:
        assert np.allclose(image.min(axis=(1, 2, 3, 4)), 0.0)
        assert np.allclose(image.max(axis=(1, 2, 3, 4)), 1.0)


def test_resize_mode_is_trilinear_resize_then_min_max(phantom_dataset):
    case = phantom_dataset.cases[0]
    cfg = Pipeline3D(size=SIZE, intensity=Intensity(clip=(-1000.0, 200.0)))
    image, _ = next(
        iter(volume_dataset(phantom_dataset, [case], cfg, batch_size=1, training=False))
    )
    hu = read_volume(phantom_dataset.path(case.image)).array
    resized = np.clip(resize_linear(hu[..., None], SIZE).numpy(), -1000.0, 200.0)
    expected = (resized - resized.min()) / (resized.max() - resized.min())
    np.testing.assert_allclose(image.numpy()[0], expected, atol=1e-5)


def test_same_seed_gives_same_epochs_and_epochs_differ(phantom_dataset):
    cfg = Pipeline3D(size=SIZE)

    def build(seed):
        return volume_dataset(
            phantom_dataset, phantom_dataset.cases, cfg, batch_size=4, training=True, seed=seed
        )

    first, second = build(3), build(3)
    epoch1, epoch2 = collect(first), collect(first)
    np.testing.assert_array_equal(epoch1[0][0], collect(second)[0][0])
    assert not np.array_equal(epoch1[0][0], epoch2[0][0])
    assert not np.array_equal(epoch1[0][0], collect(build(4))[0][0])


def test_cache_gives_the_same_validation_batches(phantom_dataset):
    plain = Pipeline3D(size=SIZE)
    cached = dataclasses.replace(plain, cache=True)
    a = collect(
        volume_dataset(phantom_dataset, phantom_dataset.cases, plain, batch_size=2, training=False)
    )
    ds = volume_dataset(
        phantom_dataset, phantom_dataset.cases, cached, batch_size=2, training=False
    )
    for b in (collect(ds), collect(ds)):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x[0], y[0])


def test_augmented_markers_stay_on_their_labels(marker_dataset):
    cfg = Pipeline3D(size=(8, 24, 24), augment=GEOMETRY_ONLY)
    for seed in range(2):
        for image, label in volume_dataset(
            marker_dataset, marker_dataset.cases, cfg, batch_size=3, training=True, seed=seed
        ):
            marker = image.numpy() > 0.9  # the marker is the brightest tissue
            lesion = label.numpy() > 0
            assert 2 * (marker & lesion).sum() / (marker.sum() + lesion.sum()) > 0.8


def has_lesion(dataset, case):
    return bool(read_volume(dataset.path(case.label)).array.any())


def test_patches_centred_on_lesions_contain_lesion(phantom_dataset):
    with_lesions = [c for c in phantom_dataset.cases if has_lesion(phantom_dataset, c)]
    cfg = Pipeline3D(
        mode="patch",
        patch_size=(8, 16, 16),
        lesion_fraction=1.0,
        patches_per_volume=3,
        augment=Augment3D(enabled=False),
    )
    batches = collect(
        volume_dataset(phantom_dataset, with_lesions, cfg, batch_size=4, training=True, seed=0)
    )
    labels = np.concatenate([b[1] for b in batches])
    assert labels.shape == (3 * len(with_lesions), 8, 16, 16, 1)
    assert all(patch.any() for patch in labels)


def test_patches_larger_than_the_volume_are_padded(marker_dataset):
    cfg = Pipeline3D(mode="patch", patch_size=(16, 32, 32), lesion_fraction=0.0)
    image, label = next(
        iter(
            volume_dataset(
                marker_dataset, marker_dataset.cases, cfg, batch_size=3, training=True, seed=0
            )
        )
    )
    assert image.shape == (3, 16, 32, 32, 1) and label.shape == (3, 16, 32, 32, 1)
    assert label.numpy().sum() > 0  # the whole volume fits, so every marker is inside


def test_validation_patches_are_the_same_every_pass(phantom_dataset):
    cfg = Pipeline3D(mode="patch", patch_size=(8, 16, 16))
    ds = volume_dataset(phantom_dataset, phantom_dataset.cases, cfg, batch_size=4, training=False)
    np.testing.assert_array_equal(collect(ds)[0][0], collect(ds)[0][0])


def test_case_without_label_is_a_clear_error(phantom_dataset):
    case = dataclasses.replace(phantom_dataset.cases[0], label=None)
    with pytest.raises(TfcovsegError, match="has no label file"):
        volume_dataset(phantom_dataset, [case], Pipeline3D(), batch_size=1, training=True)


def test_label_shape_mismatch_names_the_file(phantom_dataset, marker_dataset):
    image_case = phantom_dataset.cases[0]
    foreign_label = marker_dataset.path(marker_dataset.cases[0].label)
    case = Case(
        id="mixed", image=str(phantom_dataset.path(image_case.image)), label=str(foreign_label)
    )
    dataset = Dataset(root=phantom_dataset.root.parent, name="mixed", cases=[case])
    with pytest.raises(TfcovsegError, match="differs from the image shape") as err:
        volume_dataset(dataset, [case], Pipeline3D(), batch_size=1, training=False)
    assert str(foreign_label) in str(err.value)


def test_pipeline_config_from_yaml_mapping():
    cfg = from_dict(
        Pipeline3D,
        {"mode": "patch", "patch_size": [8, 16, 16], "augment": {"rotation": 0.5}},
        "data",
    )
    assert cfg.patch_size == (8, 16, 16) and cfg.augment.rotation == 0.5
    with pytest.raises(TfcovsegError, match="allowed values"):
        from_dict(Pipeline3D, {"mode": "slices"}, "data")


def test_element_spec_is_static_for_keras(phantom_dataset):
    ds = volume_dataset(
        phantom_dataset, phantom_dataset.cases, Pipeline3D(size=SIZE), batch_size=2, training=True
    )
    image_spec, label_spec = ds.element_spec
    assert image_spec.shape.as_list() == [None, *SIZE, 1] and image_spec.dtype == tf.float32
    assert label_spec.shape.as_list() == [None, *SIZE, 1] and label_spec.dtype == tf.int32


def test_repeat_reshuffles_and_redraws_every_pass(phantom_dataset):
    cfg = Pipeline3D(size=SIZE, augment=dataclasses.replace(Augment3D(), noise=1.0))
    cases = phantom_dataset.cases
    ds = volume_dataset(
        phantom_dataset, cases, cfg, batch_size=len(cases), training=True, with_ids=True
    )
    passes = collect(ds.repeat(4))
    orders = [tuple(ids) for _, _, ids in passes]
    assert len(set(orders)) > 1
    first = dict(zip(passes[0][2], passes[0][0]))
    second = dict(zip(passes[1][2], passes[1][0]))
    assert not any(np.array_equal(first[i], second[i]) for i in first)


def test_lesion_centring_without_lesions_falls_back_to_a_uniform_patch(phantom_dataset):
    empty = [c for c in phantom_dataset.cases if not has_lesion(phantom_dataset, c)]
    assert empty, "the shared phantoms should include a case without lesions"
    cfg = Pipeline3D(mode="patch", patch_size=(8, 16, 16), lesion_fraction=1.0)
    image, label = next(
        iter(volume_dataset(phantom_dataset, empty, cfg, batch_size=1, training=True))
    )
    assert image.shape == (1, 8, 16, 16, 1) and not label.numpy().any()


def _spacing_dataset(root, spacings, shape=(6, 12, 12)):
    """One tiny case per voxel spacing (D, H, W mm), each with a marker block as lesion."""
    cases = []
    for i, spacing in enumerate(spacings):
        image = np.full(shape, -1000.0, np.float32)
        label = np.zeros(shape, np.uint8)
        label[2:4, 4:8, 4:8] = 1
        image[label > 0] = 800.0
        files = case_files(f"s{i}")
        affine = np.diag([spacing[2], spacing[1], spacing[0], 1.0])
        write_volume(root / files["image"], image, affine, np.int16)
        write_volume(root / files["label"], label, affine, np.uint8)
        cases.append(Case(id=f"s{i}", image=files["image"], label=files["label"]))
    dataset = Dataset(root=root, name="spacings", cases=cases)
    write_dataset(dataset)
    return dataset


def test_median_spacing_is_taken_per_axis(tmp_path):
    dataset = _spacing_dataset(tmp_path, [(1.0, 0.5, 0.9), (3.0, 0.7, 0.6), (2.0, 0.9, 0.8)])
    assert median_spacing(dataset, dataset.cases) == pytest.approx((2.0, 0.7, 0.8))


def test_patch_mode_resamples_every_case_to_the_target_spacing_with_its_label(marker_dataset):
    # marker cases: 2.5 mm slices, 0.8 mm pixels; the target doubles D and halves H and W
    cfg = Pipeline3D(mode="patch", patch_size=(4, 8, 8), spacing=(1.25, 1.6, 1.6),
                     intensity=Intensity(clip=(-1000.0, 800.0)))
    volumes = list(whole_volume_dataset(marker_dataset, marker_dataset.cases, cfg))
    shapes = [tuple(image.shape[1:4]) for image, _ in volumes]
    assert shapes == [(2 * d, h // 2, w // 2) for d, h, w in [(10, 20, 24), (12, 24, 20), (8, 16, 16)]]
    halfway = (1.0 + 1040 / 1800) / 2  # scaled marker 1, tissue 1040 / 1800
    for image, label in volumes:
        lesion = label.numpy()[0, ..., 0] > 0
        marker = image.numpy()[0, ..., 0] > halfway
        assert 2 * (marker & lesion).sum() / (marker.sum() + lesion.sum()) > 0.8


def test_a_case_thinner_than_half_a_target_voxel_is_refused_naming_it(tmp_path):
    dataset = _spacing_dataset(tmp_path, [(1.0, 1.0, 1.0)], shape=(4, 12, 12))
    cfg = Pipeline3D(mode="patch", patch_size=(4, 8, 8), spacing=(10.0, 1.0, 1.0))
    with pytest.raises(DataError, match=r"case 's0' \(\[4, 12, 12\] voxels of \[1.0, 1.0, "
                       r"1.0\] mm\) is thinner than half a voxel of the target spacing") as err:
        volume_dataset(dataset, dataset.cases, cfg, batch_size=1, training=True)
    assert err.value.path == str(dataset.path(dataset.cases[0].image))


def test_resize_mode_takes_no_target_spacing():
    with pytest.raises(ConfigError, match="spacing is for patch mode"):
        from_dict(Pipeline3D, {"mode": "resize", "spacing": [1.0, 1.0, 1.0]}, "data")
    resize = Stage("s", (8, 16, 16), 1, phases=({"epochs": 1, "lr": 0.1},))
    patch = dataclasses.replace(resize, mode="patch")
    data = load_config(TrainConfig, None, ["data.target_spacing=[5, 1.5, 1.5]"]).data
    assert pipeline_config(data, resize).spacing is None
    assert pipeline_config(data, patch).spacing == (5.0, 1.5, 1.5)


@pytest.mark.parametrize("value", [pytest.param("[0, 1, 1]", id="zero"),
                                   pytest.param("[5, -1, 1]", id="negative")])
def test_a_target_spacing_that_is_not_positive_is_a_config_error(value):
    with pytest.raises(ConfigError, match=r"data.target_spacing is \[.*\]; allowed: > 0 for "
                       "each item"):
        load_config(TrainConfig, None, [f"data.target_spacing={value}"])
