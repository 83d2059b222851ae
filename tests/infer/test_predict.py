import json
import re

import nibabel as nib
import numpy as np
import pytest
from standins import sphere_ct

from tfcovseg.errors import ConfigError, DataError, TfcovsegError
from tfcovseg.infer.predict import output_paths, predict_ct
from tfcovseg.io.nifti import ras_affine, read_volume, write_volume
from tfcovseg.io.phantoms import phantom
from tfcovseg.metrics import dice

# MosMed's files are LAS: the mask must come back in LAS, on the same affine
LAS_AFFINE = np.array([[-0.7, 0, 0, 120.0], [0, 0.8, 0, -90.0], [0, 0, 5.0, -40.0], [0, 0, 0, 1]])


@pytest.fixture
def las_ct(tmp_path):
    """An off-centre sphere (so flips would show) in an LAS file, array in the file's [x, y, z]."""
    hu, inside = sphere_ct(shape=(12, 40, 36), centre=(0.4, 0.35, 0.7))
    path = tmp_path / "las.nii.gz"
    nib.save(nib.Nifti1Image(hu.transpose(2, 1, 0), LAS_AFFINE), str(path))
    return path, inside.transpose(2, 1, 0)


def test_mask_is_written_on_the_input_grid_and_orientation(make_run, las_ct):
    path, inside_xyz = las_ct
    report = predict_ct(make_run(pointwise=True), path, probabilities=True)
    paths = output_paths(path)
    assert paths.mask.name == "las_lesions.nii.gz"
    mask = nib.load(str(paths.mask))
    np.testing.assert_allclose(mask.affine, LAS_AFFINE, atol=1e-5)
    assert mask.shape == inside_xyz.shape and mask.get_data_dtype() == np.uint8
    assert dice(inside_xyz, np.asanyarray(mask.dataobj)) > 0.9
    probabilities = nib.load(str(paths.probabilities))
    assert probabilities.get_data_dtype() == np.float32 and probabilities.shape == mask.shape
    assert json.loads(paths.report.read_text())["lesion_ml"] == pytest.approx(report["lesion_ml"])
    assert paths.png.read_bytes()[:4] == b"\x89PNG"


def test_report_uses_the_given_lung_mask_per_side(make_run, ct_file, tmp_path):
    path, inside = ct_file  # spacing 5 x 0.8 x 0.7 mm
    lung = np.zeros(inside.shape, np.uint8)
    lung[:, 5:35, 18:] = 2  # right half of the RAS+ columns, labelled 2 (Ma's "right")
    lung[:, 5:35, :18] = 1
    lung_path = tmp_path / "lung.nii.gz"
    write_volume(lung_path, lung, np.diag([0.7, 0.8, 5.0, 1.0]), np.uint8)
    report = predict_ct(make_run(pointwise=True), path, out=tmp_path / "o.nii.gz",
                        lung_mask=lung_path)
    voxel_ml = 5 * 0.8 * 0.7 / 1000
    assert report["voxel_ml"] == pytest.approx(voxel_ml)
    assert report["lung_ml"]["right"] == pytest.approx((lung == 2).sum() * voxel_ml)
    assert report["lung_ml"]["left"] == pytest.approx((lung == 1).sum() * voxel_ml)
    mask = np.asanyarray(nib.load(str(tmp_path / "o.nii.gz")).dataobj).transpose(2, 1, 0) > 0
    in_right = (mask & (lung == 2)).sum() * voxel_ml
    assert report["lesion_in_lung_ml"]["right"] == pytest.approx(in_right)
    assert report["affected_percent"]["right"] == pytest.approx(
        100 * in_right / report["lung_ml"]["right"])
    assert (tmp_path / "o_report.json").is_file() and (tmp_path / "o_report.png").is_file()


def test_lungs_are_extracted_when_no_mask_is_given(make_run, tmp_path):
    image, _, lung = phantom(np.random.default_rng(2), shape=(16, 48, 48))
    spacing = (5.0, 2.5, 2.5)
    path = tmp_path / "chest.nii.gz"
    write_volume(path, image, ras_affine(image.shape, spacing))
    report = predict_ct(make_run(), path)
    true_ml = (lung > 0).sum() * np.prod(spacing) / 1000
    assert report["lung_source"] == "threshold extraction"
    assert report["lung_ml"]["total"] >= 0.9 * true_ml
    assert report["lung_ml"]["right"] > 0 and report["lung_ml"]["left"] > 0


def test_lung_mask_on_another_grid_is_refused(make_run, ct_file, tmp_path):
    path, inside = ct_file
    lung_path = tmp_path / "small.nii.gz"
    write_volume(lung_path, np.ones((4, 4, 4), np.uint8), np.eye(4), np.uint8)
    with pytest.raises(TfcovsegError, match="not on the CT's grid"):
        predict_ct(make_run(), path, lung_mask=lung_path)


def test_default_paths_for_a_dicom_folder_and_for_out(tmp_path):
    paths = output_paths(tmp_path / "series")
    assert paths.mask == tmp_path / "series_lesions.nii.gz"
    assert paths.report == tmp_path / "series_lesions_report.json"
    paths = output_paths(tmp_path / "ct.nii", out=tmp_path / "x" / "m.nii.gz")
    assert paths.probabilities == tmp_path / "x" / "m_probabilities.nii.gz"
    with pytest.raises(TfcovsegError, match=".nii.gz"):
        output_paths(tmp_path / "ct.nii", out=tmp_path / "m.png")


def test_dicom_series_folder_is_predicted_onto_its_own_grid(make_run, tmp_path):
    from tfcovseg.io.dicom import read_dicom_volume, write_dicom_series

    hu, inside = sphere_ct(shape=(10, 32, 28), centre=(0.4, 0.35, 0.7))
    series = tmp_path / "series"
    series.mkdir()
    write_dicom_series(series, hu, np.diag([0.7, 0.8, 5.0, 1.0]))
    predict_ct(make_run(pointwise=True), series)
    mask = read_volume(tmp_path / "series_lesions.nii.gz")
    source = read_dicom_volume(series)
    np.testing.assert_allclose(mask.affine, source.affine, atol=1e-4)
    assert mask.orientation == source.orientation
    assert dice(inside, mask.array > 0) > 0.9


MA_WINDOW = (-1250.0, 250.0)


@pytest.fixture
def windowed_ct(tmp_path):
    """The sphere CT windowed to [-1250, 250] HU and rescaled to 0..255, as Ma et al.'s
    radiopaedia volumes (uint8)."""
    hu, inside = sphere_ct()
    windowed = np.rint((np.clip(hu, *MA_WINDOW) - MA_WINDOW[0]) / 1500 * 255).astype(np.uint8)
    path = tmp_path / "ct_windowed.nii.gz"
    write_volume(path, windowed, np.diag([0.7, 0.8, 5.0, 1.0]), np.uint8)
    return path, inside


def test_a_windowed_ct_is_refused_before_the_model_loads_or_anything_is_written(windowed_ct,
                                                                                 tmp_path):
    path, _ = windowed_ct
    with pytest.raises(DataError, match=r"intensities range 42\.\.230: the volume looks windowed "
                       r"to 0\.\.255, not in HU; .*--input-window LOW HIGH") as err:
        predict_ct(tmp_path / "no-model-here", path)
    assert err.value.path == str(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct_windowed.nii.gz"]


def test_the_declared_window_maps_a_windowed_ct_back_to_hu(make_run, windowed_ct):
    path, inside = windowed_ct
    report = predict_ct(make_run(pointwise=True), path, input_window=MA_WINDOW)
    mask = read_volume(output_paths(path).mask)
    assert mask.array.shape == inside.shape
    assert dice(inside, mask.array > 0) > 0.9
    assert report["input_window_hu"] == list(MA_WINDOW)


def test_predicting_into_a_prepared_dataset_is_refused_without_out(phantom_dataset, tmp_path):
    image = phantom_dataset.path(phantom_dataset.cases[2].image)
    before = sorted(image.parent.iterdir())
    with pytest.raises(ConfigError, match=rf"lies inside the prepared dataset "
                       rf"{re.escape(str(phantom_dataset.root.resolve()))} \(dataset.json\); "
                       ".*give --out") as err:
        predict_ct(tmp_path / "no-model-here", image)
    assert err.value.path == str(image)
    assert sorted(image.parent.iterdir()) == before


def test_sliding_window_settings_are_checked_before_anything_is_read(tmp_path):
    with pytest.raises(ConfigError, match=r"overlap must be in \[0, 1\)"):
        predict_ct(tmp_path / "no-model-here", tmp_path / "no-ct-here.nii.gz", overlap=1.0)
    assert list(tmp_path.iterdir()) == []


def test_a_patch_model_at_its_own_spacing_writes_the_mask_on_the_input_grid(make_run, las_ct):
    path, inside_xyz = las_ct  # 5 mm slices, 0.8 x 0.7 mm pixels
    run = make_run(mode="patch", size=(4, 8, 8), pointwise=True, spacing=(2.5, 1.6, 1.4))
    report = predict_ct(run, path, probabilities=True, tta_axes=(0, 1, 2))
    paths = output_paths(path)
    for written in (paths.mask, paths.probabilities):
        image = nib.load(str(written))
        np.testing.assert_allclose(image.affine, LAS_AFFINE, atol=1e-5)
        assert image.shape == inside_xyz.shape
    assert dice(inside_xyz, np.asanyarray(nib.load(str(paths.mask)).dataobj)) > 0.9
    assert report["model_spacing_mm"] == [2.5, 1.6, 1.4] and report["tta_axes"] == [0, 1, 2]
    assert report["severity"]["total"] in {"CT-0", "CT-1", "CT-2", "CT-3", "CT-4"}
    assert "severity_rule" in json.loads(paths.report.read_text())


def test_a_ct_thinner_than_half_a_model_voxel_is_refused_before_anything_is_written(make_run,
                                                                                   tmp_path):
    hu, _ = sphere_ct(shape=(1, 40, 36))  # one 5 mm slice, for a model trained at 20 mm
    path = tmp_path / "slice.nii.gz"
    write_volume(path, hu, np.diag([0.7, 0.8, 5.0, 1.0]))
    run = make_run(mode="patch", size=(4, 8, 8), spacing=(20.0, 1.6, 1.4))
    with pytest.raises(DataError, match="thinner than half a voxel of the model's target") as err:
        predict_ct(run, path)
    assert err.value.path == str(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-patch-0-resampled", "slice.nii.gz"]


def test_mirroring_axes_are_checked_before_anything_is_read(tmp_path):
    with pytest.raises(ConfigError, match="test-time mirroring: axes must be distinct"):
        predict_ct(tmp_path / "no-model-here", tmp_path / "no-ct-here.nii.gz", tta_axes=(1, 1))
    assert list(tmp_path.iterdir()) == []
