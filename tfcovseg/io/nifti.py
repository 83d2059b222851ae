"""NIfTI volumes in tfcovseg's one orientation.

Convention: a prepared NIfTI file is stored in RAS+ (nibabel's closest canonical); in memory
a volume is a NumPy array indexed ``[D, H, W]`` = ``[z, y, x]`` of that RAS+ grid, i.e. axial
slices from inferior to superior. ``Volume.affine`` is the RAS+ voxel-to-world affine of the
``[x, y, z]`` file grid, so ``spacing`` is ``(z, y, x)`` in millimetres.
``original_ornt`` keeps how the source file was oriented, so that a prediction can be written
back on the source grid with ``to_source_grid``.
"""

import dataclasses
import zlib

import nibabel as nib
import numpy as np

from tfcovseg.errors import DataError, TfcovsegError
from tfcovseg.files import atomic_path


@dataclasses.dataclass
class Volume:
    array: np.ndarray  # [D, H, W]
    affine: np.ndarray  # 4x4, RAS+, of the [x, y, z] grid
    original_ornt: np.ndarray  # nibabel orientation of the source file's axes
    original_shape: tuple  # the source file's [x, y, z] shape

    @property
    def spacing(self) -> tuple:
        """Voxel size in mm along (D, H, W)."""
        return spacing_mm(self.affine)

    @property
    def orientation(self) -> str:
        return "".join(nib.orientations.ornt2axcodes(self.original_ornt))


def spacing_mm(affine) -> tuple:
    """Voxel size in mm along (D, H, W) of a RAS+ ``[x, y, z]`` voxel-to-world affine."""
    zooms = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))
    return (float(zooms[2]), float(zooms[1]), float(zooms[0]))


def load_nifti(path):
    """The nibabel image at ``path``; errors name the file and the problem."""
    try:
        image = nib.load(str(path))
    except FileNotFoundError:
        raise TfcovsegError("file not found", path) from None
    except (nib.filebasedimages.ImageFileError, OSError, EOFError, ValueError, zlib.error) as err:
        raise TfcovsegError(f"not a readable NIfTI file ({err})", path) from None
    return image


def read_grid(path) -> tuple:
    """``((D, H, W), RAS+ affine)`` of a 3D NIfTI, as ``read_volume`` gives them, from the header
    alone (no voxel data is read)."""
    image = load_nifti(path)
    shape = _spatial_shape(image, path)
    ornt = nib.orientations.io_orientation(image.affine)
    ras_shape = np.zeros(3, int)
    ras_shape[ornt[:, 0].astype(int)] = shape
    affine = image.affine @ nib.orientations.inv_ornt_aff(ornt, shape)
    return (int(ras_shape[2]), int(ras_shape[1]), int(ras_shape[0])), affine


def read_volume(path, dtype=np.float32, check_finite: bool = True) -> Volume:
    """Read a 3D NIfTI, reoriented to RAS+, as a ``[D, H, W]`` array."""
    image = load_nifti(path)
    if _spatial_shape(image, path) != image.shape:  # a 4D file holding one volume
        image = image.slicer[..., 0]
    original_ornt = nib.orientations.io_orientation(image.affine)
    canonical = nib.as_closest_canonical(image)
    try:
        data = np.asanyarray(canonical.dataobj)
    except (OSError, EOFError, ValueError, zlib.error) as err:
        raise TfcovsegError(f"truncated or corrupt NIfTI data ({err})", path) from None
    data = np.asarray(data, dtype=dtype)
    if check_finite and np.issubdtype(data.dtype, np.floating) and not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise TfcovsegError(f"{bad} voxels are NaN or infinite", path)
    array = np.ascontiguousarray(data.transpose(2, 1, 0))
    return Volume(array, canonical.affine.copy(), original_ornt, tuple(int(s) for s in image.shape[:3]))


def write_volume(path, array: np.ndarray, affine: np.ndarray, dtype=None) -> None:
    """Write a ``[D, H, W]`` array in RAS+ (the prepared-dataset convention), atomically."""
    data = np.asarray(array if dtype is None else array.astype(dtype)).transpose(2, 1, 0)
    image = nib.Nifti1Image(np.ascontiguousarray(data), affine)
    image.header.set_xyzt_units("mm")
    _save(image, path)


def to_source_grid(array: np.ndarray, volume: Volume) -> nib.Nifti1Image:
    """A NIfTI image of a ``[D, H, W]`` array on the grid and orientation of ``volume``'s source."""
    data = np.asarray(array).transpose(2, 1, 0)
    ras = nib.orientations.axcodes2ornt(("R", "A", "S"))
    transform = nib.orientations.ornt_transform(ras, volume.original_ornt)
    data = nib.orientations.apply_orientation(data, transform)
    inverse = nib.orientations.inv_ornt_aff(transform, array.transpose(2, 1, 0).shape)
    affine = volume.affine @ inverse
    return nib.Nifti1Image(np.ascontiguousarray(data), affine)


def ras_affine(shape, spacing) -> np.ndarray:
    """RAS+ affine of a ``[D, H, W]`` grid with ``spacing`` (D, H, W) mm, centred on the origin."""
    zooms = np.array([spacing[2], spacing[1], spacing[0]], float)
    sizes = np.array([shape[2], shape[1], shape[0]], float)
    affine = np.diag([*zooms, 1.0])
    affine[:3, 3] = -(sizes - 1) / 2 * zooms
    return affine


def radiological(axial):
    """An axial RAS+ slice ``[..., H, W]`` (rows posterior -> anterior, columns left -> right) as
    radiologists view it: anterior at the top, the patient's right on the viewer's left."""
    return axial[..., ::-1, ::-1]


def save_image(image: nib.Nifti1Image, path) -> None:
    """Save any nibabel image atomically."""
    _save(image, path)


def _save(image, path) -> None:
    suffix = ".nii.gz" if str(path).endswith(".nii.gz") else ".nii"
    with atomic_path(path, suffix=suffix) as tmp:
        nib.save(image, str(tmp))


def _spatial_shape(image, path) -> tuple:
    """The ``[x, y, z]`` shape of a 3D image (or of a 4D one with a single volume)."""
    shape = tuple(int(s) for s in image.shape)
    if len(shape) == 4 and shape[3] == 1:
        return shape[:3]
    if len(shape) != 3:
        raise DataError(f"expected a 3D volume, got shape {shape}", path)
    return shape
