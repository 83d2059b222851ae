import numpy as np
import pytest
from scipy import ndimage

from tfcovseg.errors import ConfigError
from tfcovseg.io.manifest import load_dataset
from tfcovseg.io.nifti import read_volume
from tfcovseg.io.phantoms import (
    CONSOLIDATION_HU,
    GROUND_GLASS_HU,
    LEFT_LUNG,
    RIGHT_LUNG,
    phantom,
    synthesize_dataset,
)
from tfcovseg.settings.phantoms import MIN_SIZE, Phantoms

SHAPE = (32, 96, 96)


@pytest.fixture(scope="module")
def sample():
    return phantom(np.random.default_rng(5), SHAPE)


def test_phantom_arrays_have_the_asked_shape_and_dtypes(sample):
    image, lesion, lung = sample
    assert image.shape == lesion.shape == lung.shape == SHAPE
    assert (image.dtype, lesion.dtype, lung.dtype) == (np.float32, np.uint8, np.uint8)
    assert set(np.unique(lesion)) <= {0, 1}
    assert set(np.unique(lung)) == {0, RIGHT_LUNG, LEFT_LUNG}


def test_phantom_tissues_have_ct_numbers(sample):
    image, lesion, lung = sample
    corner = image[:, :4, :4]
    assert abs(corner.mean() + 1000) < 5 and 10 < corner.std() < 30  # air with CT noise
    parenchyma = image[(lung > 0) & (lesion == 0)]
    assert -880 < np.median(parenchyma) < -800
    assert image.max() > 600  # bone
    assert ((image > 300) & (lung > 0)).sum() == 0  # no bone inside the lungs


def test_lesions_lie_inside_the_lungs_and_are_visible(sample):
    image, lesion, lung = sample
    assert lesion.sum() > 0
    assert not (lesion.astype(bool) & (lung == 0)).any()
    inside = np.median(image[lesion == 1])
    assert GROUND_GLASS_HU[0] - 100 < inside < CONSOLIDATION_HU[1] + 100
    assert inside > np.median(image[(lung > 0) & (lesion == 0)]) + 100


def test_right_lung_is_on_the_patients_right_of_the_ras_grid(sample):
    _, _, lung = sample
    columns = np.arange(SHAPE[2])
    right = columns[np.nonzero(lung == RIGHT_LUNG)[2]].mean()
    left = columns[np.nonzero(lung == LEFT_LUNG)[2]].mean()
    assert right > SHAPE[2] / 2 > left  # RAS+: column index grows towards the patient's right


def test_lesions_are_mostly_basal_and_peripheral():
    basal, apical, lesion_depth, lung_depth = 0, 0, [], []
    for seed in range(6):
        _, lesion, lung = phantom(np.random.default_rng(seed), SHAPE)
        d = np.nonzero(lesion)[0]
        basal, apical = basal + (d < SHAPE[0] / 2).sum(), apical + (d >= SHAPE[0] / 2).sum()
        depth = ndimage.distance_transform_edt(lung > 0)  # voxels from the lung border
        lesion_depth.append(depth[lesion == 1])
        lung_depth.append(depth[lung > 0])
    assert basal > apical
    assert np.mean(np.concatenate(lesion_depth)) < np.mean(np.concatenate(lung_depth))


def test_phantom_is_deterministic_per_seed():
    first = phantom(np.random.default_rng(3), (16, 48, 48))
    again = phantom(np.random.default_rng(3), (16, 48, 48))
    other = phantom(np.random.default_rng(4), (16, 48, 48))
    for a, b in zip(first, again, strict=True):
        assert a.tobytes() == b.tobytes()
    assert first[0].tobytes() != other[0].tobytes()


def test_lesion_count_and_radius_set_the_extent_of_disease():
    def lesion_share(**lesions):
        shares = []
        for seed in range(4):
            _, lesion, lung = phantom(np.random.default_rng(seed), (16, 48, 48), **lesions)
            shares.append(lesion.sum() / (lung > 0).sum())
        return np.mean(shares)

    mild = lesion_share()
    severe = lesion_share(lesion_count=(6, 6), lesion_radius=(0.25, 0.3))
    _, one, _ = phantom(np.random.default_rng(0), (16, 48, 48), lesion_count=(1, 1))
    assert severe > 4 * mild and ndimage.label(one)[1] == 1


def test_phantom_without_lesions_has_an_empty_label():
    _, lesion, lung = phantom(np.random.default_rng(0), (16, 48, 48), lesions=False)
    assert lesion.sum() == 0 and lung.sum() > 0


def test_shared_fixture_is_a_loadable_prepared_dataset(phantom_dataset):
    dataset = load_dataset(phantom_dataset.root)
    assert [c.id for c in dataset.cases] == [f"phantoms_{i:03d}" for i in range(4)]
    assert dataset.extra["lung_labels"] == {"1": "right lung", "2": "left lung"}
    volume = read_volume(dataset.path(dataset.cases[0].image))
    assert volume.array.shape == (24, 64, 64)
    assert volume.spacing == (5.0, 2.5, 2.5)
    assert volume.orientation == "RAS"
    labels = [read_volume(dataset.path(c.label)).array.sum() for c in dataset.cases]
    assert labels[3] == 0 and all(n > 0 for n in labels[:3])
    assert dataset.cases[3].notes == "no lesions"


def test_synthesize_dataset_is_byte_identical_for_a_seed(tmp_path):
    settings = Phantoms(cases=2, seed=7, shape=(12, 32, 32))
    first = synthesize_dataset(tmp_path / "a", settings)
    again = synthesize_dataset(tmp_path / "b", settings)
    for a, b in zip(first.cases, again.cases, strict=True):
        for key in ("image", "label", "lung"):
            x = read_volume(first.path(getattr(a, key))).array
            y = read_volume(again.path(getattr(b, key))).array
            assert x.tobytes() == y.tobytes()


def test_a_shape_below_the_smallest_phantom_is_refused():
    with pytest.raises(ValueError, match=rf"shape is \[2, 64, 64\]; allowed: >= {MIN_SIZE}"):
        Phantoms(shape=(2, 64, 64))
    with pytest.raises(ConfigError, match="shape must be"):
        phantom(np.random.default_rng(0), (MIN_SIZE - 1, 16, 16))


def test_the_smallest_phantom_is_drawn():
    image, lesion, lung = phantom(np.random.default_rng(0), (MIN_SIZE,) * 3)
    assert image.shape == lesion.shape == lung.shape == (MIN_SIZE,) * 3


def test_every_bad_setting_is_reported_at_once_before_anything_is_written(tmp_path):
    from tfcovseg.config import from_dict

    with pytest.raises(ConfigError) as err:
        synthesize_dataset(tmp_path / "out", from_dict(
            Phantoms, {"cases": 0, "seed": -1, "spacing": [5.0, 0.0, 2.5]}, "phantoms"))
    assert str(err.value) == ("phantoms.cases is 0; allowed: >= 1; phantoms.seed is -1; "
                              "allowed: >= 0; phantoms.spacing is [5.0, 0.0, 2.5]; allowed: > 0 "
                              "for each item")
    assert not (tmp_path / "out").exists()
