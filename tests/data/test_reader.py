"""Reading a prepared dataset's cases into tf.data: values, masks, and errors naming the file."""

import shutil

import nibabel as nib
import numpy as np
import pytest

from tfcovseg.data.pipeline3d import volume_dataset
from tfcovseg.data.reader import case_dataset, check_cases, read_errors
from tfcovseg.errors import TfcovsegError
from tfcovseg.io.manifest import load_dataset
from tfcovseg.io.nifti import read_volume
from tfcovseg.settings.data import Pipeline3D


def test_cases_arrive_in_order_with_hu_and_binary_masks(phantom_dataset):
    cases = phantom_dataset.cases[:2]
    elements = list(case_dataset(phantom_dataset, cases, ("image", "label", "lung")))
    for case, element in zip(cases, elements):
        assert element["id"].numpy().decode() == case.id
        hu = read_volume(phantom_dataset.path(case.image)).array
        np.testing.assert_array_equal(element["image"].numpy(), hu)
        lung = read_volume(phantom_dataset.path(case.lung)).array
        np.testing.assert_array_equal(element["lung"].numpy(), lung > 0)
        assert element["label"].dtype == "uint8"


def test_check_cases_returns_slice_major_shapes(phantom_dataset):
    shapes = check_cases(phantom_dataset, phantom_dataset.cases)
    assert shapes == [tuple(c.shape) for c in phantom_dataset.cases]


def test_a_2d_image_is_rejected_with_its_file_name(marker_dataset, tmp_path):
    root = tmp_path / "flat"
    shutil.copytree(marker_dataset.root, root)
    path = root / marker_dataset.cases[0].image
    nib.save(nib.Nifti1Image(np.zeros((8, 8), np.int16), np.eye(4)), str(path))
    dataset = load_dataset(root)
    with pytest.raises(TfcovsegError, match="expected a 3D volume") as err:
        check_cases(dataset, dataset.cases)
    assert str(path) in str(err.value)


def test_corrupt_voxel_data_surfaces_as_one_error_naming_the_file(marker_dataset, tmp_path):
    root = tmp_path / "truncated"
    shutil.copytree(marker_dataset.root, root)
    path = root / marker_dataset.cases[1].image
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # header intact, voxel data cut short
    dataset = load_dataset(root)
    batches = volume_dataset(
        dataset, dataset.cases, Pipeline3D(size=(4, 8, 8)), batch_size=1, training=False
    )
    with pytest.raises(TfcovsegError, match="truncated or corrupt") as err, read_errors():
        list(batches)
    assert str(path) in str(err.value)


def _copy_with_label(marker_dataset, root, change):
    """A copy of the marker dataset whose first label file is rewritten by ``change``."""
    shutil.copytree(marker_dataset.root, root)
    path = root / marker_dataset.cases[0].label
    label = nib.load(str(path))
    array, affine = change(np.asanyarray(label.dataobj), label.affine)
    nib.save(nib.Nifti1Image(array, affine), str(path))
    return load_dataset(root), path


def test_training_data_refuses_label_values_the_manifest_does_not_declare(marker_dataset, tmp_path):
    dataset, path = _copy_with_label(marker_dataset, tmp_path / "values",
                                     lambda a, affine: ((a * 2).astype(np.uint8), affine))
    with pytest.raises(TfcovsegError, match=r"case 'm0': label values 2 are not declared in "
                       r'dataset.json "labels" \(0 background, 1 lesion\)') as err:
        volume_dataset(dataset, dataset.cases, Pipeline3D(size=(4, 8, 8)), batch_size=1,
                       training=True)
    assert err.value.path == str(path)


def test_a_label_on_another_spacing_than_its_image_is_refused(marker_dataset, tmp_path):
    dataset, path = _copy_with_label(marker_dataset, tmp_path / "spacing",
                                     lambda a, affine: (a, affine @ np.diag([2.0, 1.0, 1.0, 1.0])))
    with pytest.raises(TfcovsegError, match=r"case 'm0': the label grid differs from the image's "
                       r"\(spacing 2.5x0.8x1.6 vs 2.5x0.8x0.8 mm") as err:
        check_cases(dataset, dataset.cases)
    assert err.value.path == str(path)
