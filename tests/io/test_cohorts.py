import gzip

import nibabel as nib
import numpy as np
import pytest

from tfcovseg.errors import TfcovsegError
from tfcovseg.io.converters import prepare
from tfcovseg.io.manifest import load_dataset
from tfcovseg.io.nifti import read_volume

XYZ = (20, 16, 6)  # file shape: columns, rows, slices
RAS = np.diag([0.8, 0.8, 5.0, 1.0])
LAS = np.diag([-0.8, 0.8, 8.0, 1.0])


def _ct(seed=0, shape=XYZ):
    rng = np.random.default_rng(seed)
    image = rng.normal(-700, 200, shape).astype(np.float32)
    image[0, 0, 0] = -1024.0
    return image


def _lesion(shape=XYZ, value=1):
    mask = np.zeros(shape, np.int16)
    mask[4:9, 3:7, 1:4] = value
    return mask


def _save(path, array, affine=RAS):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, affine), str(path))
    return path


def _summary(dataset):
    return {c.id: c for c in load_dataset(dataset.root).cases}


def test_mosmed_keeps_studies_with_masks_in_ras_and_records_las(tmp_path):
    src = tmp_path / "mosmed"
    image = _ct().astype(np.int16)
    _save(src / "studies/CT-1/study_0255.nii.gz", image, LAS)
    _save(src / "studies/CT-0/study_0001.nii.gz", image, LAS)  # no mask: not used
    _save(src / "masks/study_0255_mask.nii.gz", _lesion(), LAS)
    _save(src / "masks/study_0300_mask.nii.gz", _lesion(), LAS)  # no study: reported
    dataset = prepare("mosmed", src, tmp_path / "out")
    cases = _summary(dataset)
    assert list(cases) == ["mosmed_0255"]
    assert dataset.extra["skipped"][0]["id"] == "mosmed_0300"
    case = cases["mosmed_0255"]
    assert case.orientation == "LAS" and case.spacing == [8.0, 0.8, 0.8]
    volume = read_volume(dataset.path(case.image))
    assert volume.orientation == "RAS"
    np.testing.assert_array_equal(volume.array, image[::-1].transpose(2, 1, 0))  # x flipped
    label = read_volume(dataset.path(case.label)).array
    assert label.sum() == _lesion().sum() and label[1:4, 3:7].any()


def test_coronacases_keeps_hu_volumes_skips_windowed_and_swaps_lung_sides(tmp_path):
    src = tmp_path / "ma"
    lung = np.zeros(XYZ, np.uint8)
    lung[:10], lung[10:] = 1, 2  # Ma et al.: 1 left, 2 right; in RAS, x grows to the right
    _save(src / "COVID-19-CT-Seg_20cases/coronacases_org_001.nii", _ct())  # mirror's name
    _save(src / "COVID-19-CT-Seg_20cases/radiopaedia_org_covid-19-pneumonia-4_85506_1-dcm.nii.gz",
          np.clip(_ct() / 8 + 160, 0, 255))
    for key in ("coronacases_001", "radiopaedia_4_85506_1"):
        _save(src / f"Infection_Mask/{key}.nii.gz", _lesion().astype(np.uint8))
        _save(src / f"Lung_Mask/{key}.nii.gz", lung)
    dataset = prepare("coronacases", src, tmp_path / "out")
    cases = _summary(dataset)
    assert list(cases) == ["coronacases_001"]
    assert dataset.extra["skipped"][0]["id"] == "radiopaedia_4_85506_1"
    assert "windowed" in dataset.extra["skipped"][0]["reason"]
    lungs = read_volume(dataset.path(cases["coronacases_001"].lung)).array
    assert (lungs[:, :, :10] == 2).all() and (lungs[:, :, 10:] == 1).all()  # ours: 1 right
    assert dataset.extra["lung_labels"] == {"1": "right lung", "2": "left lung"}


@pytest.mark.parametrize("z_step", [5.0, -5.0])
def test_medseg_writes_one_case_per_slice_with_merged_classes(tmp_path, z_step):
    src = tmp_path / "medseg"
    affine = np.diag([0.8, 0.8, z_step, 1.0])
    image = _ct(shape=(12, 12, 5))
    mask = np.zeros((12, 12, 5), np.uint8)
    mask[2:4, 2:4, 0], mask[5:7, 5:7, 2], mask[8:10, 8:10, 4] = 1, 2, 3
    _save(src / "tr_im.nii.gz", image, affine)
    _save(src / "tr_mask.nii.gz", mask, affine)
    _save(src / "tr_lungmasks_updated.nii.gz", (mask > 0).astype(np.uint8) * 2, affine)
    dataset = prepare("medseg", src, tmp_path / "out")
    cases = _summary(dataset)
    assert list(cases) == [f"medseg_{k:03d}" for k in range(5)]
    for k in range(5):
        slice_image = read_volume(dataset.path(cases[f"medseg_{k:03d}"].image))
        assert slice_image.array.shape == (1, 12, 12)
        np.testing.assert_allclose(slice_image.array[0], image[:, :, k].T, atol=0.5)
        assert slice_image.affine[2, 3] == pytest.approx(z_step * k)  # file slice k's position
        label = read_volume(dataset.path(cases[f"medseg_{k:03d}"].label)).array
        np.testing.assert_array_equal(label[0], (mask[:, :, k] > 0).T)
    lungs = read_volume(dataset.path(cases["medseg_002"].lung)).array
    assert set(np.unique(lungs)) == {0, 1}


def test_radiopaedia_merges_ggo_and_consolidation_and_flags_unknown_values(tmp_path):
    src = tmp_path / "rp"
    for n in (1, 2, 10):
        _save(src / f"rp_im/{n}.nii.gz", _ct(n))
        mask = _lesion()
        mask[10:12, 10:12, 0] = 2
        if n == 2:
            mask[0, 0, 0] = 7
        _save(src / f"rp_msk/{n}.nii.gz", mask)
    dataset = prepare("radiopaedia", src, tmp_path / "out")
    cases = _summary(dataset)
    assert list(cases) == ["radiopaedia_1", "radiopaedia_2", "radiopaedia_10"]
    label = read_volume(dataset.path(cases["radiopaedia_1"].label)).array
    assert label.sum() == _lesion().sum() + 4 and label.max() == 1
    assert cases["radiopaedia_2"].flags == ["unknown_label_values"]
    assert cases["radiopaedia_1"].lung is None


def test_folder_accepts_the_documented_layouts(tmp_path):
    src = tmp_path / "mine"
    _save(src / "images/a.nii.gz", _ct(1))
    _save(src / "labels/a.nii.gz", _lesion(value=3))
    _save(src / "lungs/a.nii.gz", np.ones(XYZ, np.uint8))
    _save(src / "imagesTr/b_0000.nii.gz", _ct(2))
    _save(src / "labelsTr/b.nii.gz", _lesion())
    _save(src / "c_image.nii", _ct(3))
    _save(src / "c_label.nii", _lesion())
    _save(src / "d_image.nii.gz", _ct(4))  # unlabelled: for prediction
    cases = _summary(prepare("folder", src, tmp_path / "out"))
    assert list(cases) == ["a", "b", "c", "d"]
    assert cases["a"].lung and cases["d"].label is None
    assert read_volume(tmp_path / "out" / cases["a"].label).array.max() == 1


def test_bad_cases_are_reported_and_the_others_converted(tmp_path):
    src = tmp_path / "mine"
    _save(src / "good_image.nii.gz", _ct())
    _save(src / "good_label.nii.gz", _lesion())
    _save(src / "shape_image.nii.gz", _ct())
    _save(src / "shape_label.nii.gz", _lesion(shape=(20, 16, 5)))
    nan = _ct()
    nan[1, 1, 1] = np.nan
    _save(src / "nan_image.nii.gz", nan)
    _save(src / "flat_image.nii.gz", _ct()[:, :, 0])  # 2D
    _save(src / "time_image.nii.gz", np.stack([_ct(), _ct()], axis=-1))  # 4D
    data = gzip.compress(nib.Nifti1Image(_ct(), RAS).to_bytes())
    (src / "cut_image.nii.gz").write_bytes(data[: len(data) // 2])
    _save(src / "offset_image.nii.gz", _ct())
    _save(src / "offset_label.nii.gz", _lesion(), np.diag([0.8, 0.8, 5.5, 1.0]))
    _save(src / "windowed_image.nii.gz", np.clip(_ct() / 8 + 160, 0, 255))
    dataset = prepare("folder", src, tmp_path / "out")
    cases = _summary(dataset)
    assert set(cases) == {"good", "offset", "windowed"}
    assert cases["offset"].flags == ["affine_mismatch"]
    assert cases["windowed"].flags == ["windowed"]
    reasons = {s["id"]: s["reason"] for s in dataset.extra["skipped"]}
    assert set(reasons) == {"shape", "nan", "flat", "time", "cut"}
    assert "differs from the image" in reasons["shape"] and "shape_label" in reasons["shape"]
    assert "NaN" in reasons["nan"]
    assert "3D" in reasons["flat"] and "3D" in reasons["time"]
    assert "cut_image" in reasons["cut"]


def test_empty_or_missing_source_is_one_clear_error(tmp_path):
    with pytest.raises(TfcovsegError, match="no cases found"):
        prepare("folder", tmp_path, tmp_path / "out")
    with pytest.raises(TfcovsegError, match="not found"):
        prepare("mosmed", tmp_path / "absent", tmp_path / "out")
    with pytest.raises(TfcovsegError, match="tr_im.nii.gz"):
        prepare("medseg", tmp_path, tmp_path / "out")


def test_source_where_every_case_is_bad_is_an_error(tmp_path):
    src = tmp_path / "mine"
    (src / "images").mkdir(parents=True)
    (src / "images" / "x.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(TfcovsegError, match="no folder case could be converted"):
        prepare("folder", src, tmp_path / "out")
