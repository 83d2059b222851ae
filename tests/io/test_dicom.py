import numpy as np
import pytest

from tfcovseg.errors import TfcovsegError
from tfcovseg.io.dicom import (
    list_series,
    read_dicom_series,
    read_dicom_volume,
    write_dicom_series,
)
from tfcovseg.io.nifti import ras_affine, to_source_grid
from tfcovseg.io.phantoms import phantom

SHAPE = (5, 24, 32)
SPACING = (2.5, 0.8, 0.7)


@pytest.fixture(scope="module")
def ct():
    image, _, _ = phantom(np.random.default_rng(0), SHAPE)
    affine = ras_affine(SHAPE, SPACING)
    affine[:3, 3] += [12.0, -30.0, 105.0]
    return np.rint(image), affine


def test_hu_survive_per_slice_slope_and_intercept(tmp_path, ct):
    image, affine = ct
    rescale = [(0.5, -1000.0), (1.0, -1024.0), (2.0, -3000.0), (0.25, -800.0), (1.0, 0.0)]
    image = np.clip(image, -1024, 1000)  # slope 0.25 stores 4 units per HU: stay within int16
    write_dicom_series(tmp_path, image, affine, rescale=rescale)
    volume = read_dicom_volume(tmp_path)
    assert volume.array.dtype == np.float32
    np.testing.assert_allclose(volume.array, image, atol=1.0)  # slope 2 rounds to even HU


def test_geometry_round_trips_through_lps(tmp_path, ct):
    image, affine = ct
    uids = write_dicom_series(tmp_path, image, affine)
    series = read_dicom_series(tmp_path)
    volume = series.volume()
    np.testing.assert_allclose(volume.affine, affine, atol=1e-4)
    np.testing.assert_allclose(volume.spacing, SPACING, atol=1e-4)
    assert volume.orientation == "LPS"  # stored as radiologists view it
    assert series.sop_uids_in_d_order() == uids
    assert np.array_equal(volume.array, image)


def test_to_source_grid_gives_the_dicom_grid(tmp_path, ct):
    image, affine = ct
    write_dicom_series(tmp_path, image, affine)
    series = read_dicom_series(tmp_path)
    native = to_source_grid(series.volume().array, series.volume())
    assert native.shape == (SHAPE[2], SHAPE[1], SHAPE[0])  # columns, rows, slices
    np.testing.assert_allclose(native.affine, series.affine)
    assert np.array_equal(np.asarray(native.dataobj).transpose(2, 1, 0), series.array)


def test_native_slices_follow_the_sop_uids(tmp_path, ct):
    image, affine = ct
    uids = write_dicom_series(tmp_path, image, affine)
    for i, path in enumerate(sorted(tmp_path.glob("*.dcm"))):  # shuffle the file names
        path.rename(tmp_path / f"x{(i * 3) % 5}.dcm")
    series = read_dicom_series(tmp_path)
    assert series.sop_uids == uids  # sorted by position, not by name
    marked = np.zeros(series.array.shape, np.uint8)
    marked[series.sop_uids.index(uids[1])] = 1
    assert series.volume(marked).array[1].all() and series.volume(marked).array.sum() == 24 * 32


def test_folder_with_two_series_reads_the_asked_one(tmp_path, ct, caplog):
    image, affine = ct
    write_dicom_series(tmp_path / "a", image[:3], affine, series_uid="1.2.3.1")
    write_dicom_series(tmp_path / "b", image, affine, series_uid="1.2.3.2")
    for path in (tmp_path / "a").glob("*.dcm"):
        path.rename(tmp_path / "b" / f"other_{path.name}")
    assert set(list_series(tmp_path / "b")) == {"1.2.3.1", "1.2.3.2"}
    assert read_dicom_series(tmp_path / "b", "1.2.3.1").array.shape[0] == 3
    assert read_dicom_series(tmp_path / "b").series_uid == "1.2.3.2"  # the largest
    assert "2 series here" in caplog.text
    with pytest.raises(TfcovsegError, match="no series 9.9"):
        read_dicom_series(tmp_path / "b", "9.9")


def test_one_file_of_a_series_reads_that_series(tmp_path, ct):
    image, affine = ct
    write_dicom_series(tmp_path, image[:3], affine, series_uid="1.2.3.1")
    for path in tmp_path.glob("*.dcm"):
        path.rename(tmp_path / f"small_{path.name}")
    write_dicom_series(tmp_path, image, affine, series_uid="1.2.3.2")
    assert read_dicom_series(tmp_path / "small_0001.dcm").series_uid == "1.2.3.1"
    (tmp_path / "notes.txt").write_text("not dicom")
    with pytest.raises(TfcovsegError, match="not a readable DICOM file"):
        read_dicom_series(tmp_path / "notes.txt")


def test_missing_gaps_are_flagged(tmp_path, ct):
    image, affine = ct
    write_dicom_series(tmp_path, image, affine)
    (tmp_path / "0002.dcm").unlink()
    assert read_dicom_series(tmp_path).flags == ["uneven_slices"]


def test_empty_and_missing_folders_are_clear_errors(tmp_path):
    with pytest.raises(TfcovsegError, match="no DICOM series"):
        read_dicom_series(tmp_path)
    (tmp_path / "notes.txt").write_text("not dicom")
    with pytest.raises(TfcovsegError, match="no DICOM series"):
        read_dicom_series(tmp_path)
    with pytest.raises(TfcovsegError, match="not found"):
        read_dicom_series(tmp_path / "absent")


def test_truncated_file_is_left_out_with_a_flag(tmp_path, ct, caplog):
    image, affine = ct
    write_dicom_series(tmp_path, image, affine)
    path = tmp_path / "0003.dcm"
    path.write_bytes(path.read_bytes()[:-700])
    series = read_dicom_series(tmp_path)
    assert series.array.shape[0] == SHAPE[0] - 1
    assert "unreadable_files" in series.flags and "uneven_slices" in series.flags
    assert "0003.dcm" in caplog.text


def test_folder_of_corrupt_files_is_a_clear_error(tmp_path, ct):
    image, affine = ct
    write_dicom_series(tmp_path, image, affine)
    for path in tmp_path.glob("*.dcm"):
        path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(TfcovsegError, match="5 DICOM files could not be parsed") as err:
        read_dicom_series(tmp_path)
    assert str(tmp_path) in str(err.value)
