import nibabel as nib
import numpy as np
import pytest

from tfcovseg.errors import TfcovsegError
from tfcovseg.io.nifti import read_grid, read_volume, save_image, to_source_grid, write_volume


def _las_image(data):
    """A NIfTI in LAS orientation (MosMed's) with anisotropic voxels 0.7 x 0.8 x 8 mm."""
    affine = np.diag([-0.7, 0.8, 8.0, 1.0])
    affine[:3, 3] = [100.0, -50.0, 20.0]
    return nib.Nifti1Image(data, affine)


def test_read_volume_reorients_to_ras_and_orders_axes_dhw(tmp_path):
    data = np.arange(4 * 5 * 3, dtype=np.int16).reshape(4, 5, 3)  # x, y, z on disk
    save_image(_las_image(data), tmp_path / "v.nii.gz")
    volume = read_volume(tmp_path / "v.nii.gz")
    assert volume.array.shape == (3, 5, 4)
    assert volume.orientation == "LAS"
    assert volume.spacing == pytest.approx((8.0, 0.8, 0.7))
    # x was flipped (L -> R), so the first RAS column is the last stored one
    assert volume.array[0, 0, 0] == data[3, 0, 0]
    assert volume.array[2, 4, 3] == data[0, 4, 2]
    # the canonical affine maps voxel (x, y, z) to the same world point as the source
    src = _las_image(data).affine
    world_src = src @ np.array([3, 4, 2, 1.0])
    world_ras = volume.affine @ np.array([0, 4, 2, 1.0])
    np.testing.assert_allclose(world_src, world_ras)


@pytest.mark.parametrize("axes", [
    pytest.param([[0, -1], [1, 1], [2, 1]], id="LAS"),
    pytest.param([[2, 1], [0, -1], [1, 1]], id="permuted-axes"),
])
def test_read_grid_gives_read_volumes_shape_and_affine_from_the_header(tmp_path, axes):
    data = np.zeros((4, 5, 3), np.int16)
    image = _las_image(data).as_reoriented(axes)
    save_image(image, tmp_path / "v.nii.gz")
    path = tmp_path / "v.nii.gz"
    shape, affine = read_grid(path)
    volume = read_volume(path)
    assert shape == volume.array.shape
    np.testing.assert_allclose(affine, volume.affine)
    path.write_bytes(path.read_bytes()[:400])  # the header alone: no voxel data left to read
    assert read_grid(path)[0] == shape


def test_to_source_grid_restores_the_source_layout(tmp_path):
    data = np.random.default_rng(0).integers(0, 9, (4, 5, 3)).astype(np.int16)
    image = _las_image(data)
    save_image(image, tmp_path / "v.nii.gz")
    volume = read_volume(tmp_path / "v.nii.gz")
    back = to_source_grid(volume.array, volume)
    np.testing.assert_array_equal(np.asarray(back.dataobj), data)
    np.testing.assert_allclose(back.affine, image.affine)


def test_write_then_read_round_trip(tmp_path):
    array = np.random.default_rng(1).normal(size=(3, 4, 5)).astype(np.float32)
    affine = np.diag([2.0, 2.0, 5.0, 1.0])
    write_volume(tmp_path / "a.nii.gz", array, affine)
    volume = read_volume(tmp_path / "a.nii.gz")
    np.testing.assert_allclose(volume.array, array)
    assert volume.spacing == pytest.approx((5.0, 2.0, 2.0))
    assert not list(tmp_path.glob(".*tmp"))


def test_bad_files_give_one_clear_error(tmp_path):
    with pytest.raises(TfcovsegError, match="file not found"):
        read_volume(tmp_path / "missing.nii.gz")
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(b"not a nifti at all")
    with pytest.raises(TfcovsegError, match="junk.nii.gz"):
        read_volume(junk)
    flat = tmp_path / "flat.nii.gz"
    save_image(nib.Nifti1Image(np.zeros((4, 4), np.float32), np.eye(4)), flat)
    with pytest.raises(TfcovsegError, match="expected a 3D volume"):
        read_volume(flat)


def test_truncated_file_is_reported_with_its_name(tmp_path):
    good = tmp_path / "good.nii.gz"
    noise = np.random.default_rng(2).normal(size=(8, 16, 16)).astype(np.float32)
    write_volume(good, noise, np.eye(4))
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(TfcovsegError, match="cut.nii.gz"):
        read_volume(cut)


def test_nan_voxels_are_refused(tmp_path):
    array = np.zeros((2, 3, 3), np.float32)
    array[1, 1, 1] = np.nan
    write_volume(tmp_path / "n.nii.gz", array, np.eye(4))
    with pytest.raises(TfcovsegError, match="1 voxels are NaN"):
        read_volume(tmp_path / "n.nii.gz")
