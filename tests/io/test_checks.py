"""Checks on CTs and masks: HU at the door of prediction, a prepared case's grids and values."""

import json

import nibabel as nib
import numpy as np
import pytest

from tfcovseg.errors import ConfigError, DataError
from tfcovseg.io.checks import check_case, ct_in_hu, unwindow
from tfcovseg.io.manifest import Case, Dataset, case_files, load_dataset, write_dataset
from tfcovseg.io.nifti import write_volume

MA_WINDOW = (-1250.0, 250.0)  # Ma et al.'s radiopaedia volumes: this window, rescaled to 0..255


def test_unwindow_maps_0_and_255_to_the_window_ends_linearly():
    restored = unwindow(np.array([0, 51, 255], np.uint8), MA_WINDOW)
    np.testing.assert_allclose(restored, [-1250.0, -1250.0 + 51 / 255 * 1500, 250.0])
    assert restored.dtype == np.float32


def test_a_ct_in_hu_passes_unchanged():
    hu = np.array([-1000.0, 40.0, 700.0], np.float32)
    assert ct_in_hu(hu, "ct.nii.gz") is hu


@pytest.mark.parametrize("values, problem", [
    pytest.param([0.0, 30.0, 255.0], r"intensities range 0\.\.255: the volume looks windowed to "
                 r"0\.\.255, not in HU; .*--input-window LOW HIGH.*--input-window -1250 250",
                 id="windowed"),
    pytest.param([0.0, 1024.0, 3071.0], r"intensities range 0\.\.3071: no value below 0, so not "
                 "HU", id="raw-stored-values"),
])
def test_a_ct_not_in_hu_is_refused_naming_the_file_and_range(values, problem):
    with pytest.raises(DataError, match=problem) as err:
        ct_in_hu(np.array(values, np.float32), "scans/ct_windowed.nii.gz")
    assert err.value.path == "scans/ct_windowed.nii.gz"


def test_a_declared_window_restores_hu_of_a_windowed_ct():
    windowed = np.array([0.0, 42.5, 255.0], np.float32)
    np.testing.assert_allclose(ct_in_hu(windowed, "ct.nii.gz", MA_WINDOW), [-1250, -1000, 250])


@pytest.mark.parametrize("window, problem", [
    pytest.param((250.0, -1250.0), "LOW < HIGH, got 250 -1250", id="reversed"),
    pytest.param((-1250.0, float("nan")), "finite HU", id="nan"),
])
def test_an_impossible_window_is_refused(window, problem):
    with pytest.raises(ConfigError, match=problem):
        ct_in_hu(np.zeros(3, np.float32), "ct.nii.gz", window)


def test_a_window_for_a_ct_already_in_hu_is_refused():
    with pytest.raises(DataError, match=r"--input-window -1250 250 is for volumes windowed to "
                       r"0\.\.255, but the intensities range -1000\.\.700"):
        ct_in_hu(np.array([-1000.0, 700.0], np.float32), "ct.nii.gz", MA_WINDOW)


SHAPE = (10, 20, 24)  # D, H, W
AFFINE = np.diag([0.8, 0.8, 2.5, 1.0])


@pytest.fixture
def case_copy(tmp_path):
    """A one-case dataset: air, a lesion block, lungs 1 = right and 2 = left; and its case."""
    files = case_files("m0")
    image = np.full(SHAPE, -1000.0, np.float32)
    label = np.zeros(SHAPE, np.uint8)
    label[2:5, 4:9, 3:9] = 1
    lung = np.zeros(SHAPE, np.uint8)
    lung[1:-1, 2:18, 12:22], lung[1:-1, 2:18, 2:12] = 1, 2
    for key, array in (("image", image), ("label", label), ("lung", lung)):
        write_volume(tmp_path / files[key], array, AFFINE, np.int16 if key == "image" else np.uint8)
    write_dataset(Dataset(root=tmp_path, name="m", cases=[Case(id="m0", **files)]))
    dataset = load_dataset(tmp_path)
    return dataset, dataset.cases[0]


def test_a_prepared_case_passes_and_gives_its_shape(case_copy):
    dataset, case = case_copy
    assert check_case(dataset, case, ("image", "label", "lung")) == SHAPE


def _rewrite(path, change):
    image = nib.load(str(path))
    array, affine = change(np.asanyarray(image.dataobj).copy(), image.affine.copy())
    nib.save(nib.Nifti1Image(array, affine), str(path))


@pytest.mark.parametrize("key, change, problem", [
    pytest.param("label", lambda a, aff: (np.where(a > 0, 3, 0).astype(np.uint8), aff),
                 r"case 'm0': label values 3 are not declared in dataset.json \"labels\" "
                 r"\(0 background, 1 lesion\)", id="undeclared-label-value"),
    pytest.param("lung", lambda a, aff: (a * 3, aff),
                 r"case 'm0': lung values 3, 6 are not declared in dataset.json \"lung_labels\" "
                 r"\(0 background, 1 right lung, 2 left lung\)", id="undeclared-lung-value"),
    pytest.param("label", lambda a, aff: (a, aff @ np.diag([1.0, 1.0, 2.0, 1.0])),
                 r"case 'm0': the label grid differs from the image's \(spacing 5x0.8x0.8 vs "
                 r"2.5x0.8x0.8 mm along D, H, W", id="other-spacing"),
    pytest.param("lung", lambda a, aff: (a[:, :, :-1], aff),
                 r"case 'm0': lung shape \(9, 20, 24\) differs from the image shape \(10, 20, 24\)",
                 id="other-shape"),
])
def test_a_case_file_that_does_not_fit_is_refused_naming_case_and_file(case_copy, key, change,
                                                                         problem):
    dataset, case = case_copy
    path = dataset.path(getattr(case, key))
    _rewrite(path, change)
    with pytest.raises(DataError, match=problem) as err:
        check_case(dataset, case, ("image", "label", "lung"))
    assert err.value.path == str(path)


def test_lung_values_follow_the_manifest_declaration(case_copy):
    dataset, case = case_copy
    manifest = dataset.root / "dataset.json"
    data = json.loads(manifest.read_text())
    data["lung_labels"] = {"1": "lung"}  # the fixture's lungs hold 1 and 2
    manifest.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"lung values 2 are not declared .*\(0 background, 1 lung\)"):
        check_case(load_dataset(dataset.root), case, ("image", "lung"))
    write_volume(dataset.path(case.lung), np.ones(SHAPE, np.uint8), AFFINE, np.uint8)
    assert check_case(load_dataset(dataset.root), case, ("image", "lung")) == SHAPE


def test_a_mask_that_passed_is_not_read_again_until_it_changes(case_copy, monkeypatch):
    import tfcovseg.io.checks

    dataset, case = case_copy
    reads = []
    real_read = tfcovseg.io.checks.read_volume
    monkeypatch.setattr(tfcovseg.io.checks, "read_volume",
                        lambda path: reads.append(str(path)) or real_read(path))
    for _ in range(3):
        check_case(dataset, case, ("image", "label"))
    assert reads == [str(dataset.path(case.label))]
    _rewrite(dataset.path(case.label), lambda a, aff: (np.where(a > 0, 3, 0).astype(np.uint8), aff))
    with pytest.raises(DataError, match="label values 3 are not declared"):
        check_case(dataset, case, ("image", "label"))
    with pytest.raises(DataError, match="label values 3 are not declared"):  # a failure is kept
        check_case(dataset, case, ("image", "label"))
