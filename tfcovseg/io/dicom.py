"""DICOM CT series: read one (HU, geometry, SOP instance UIDs) and write one.

Reading uses SimpleITK (GDCM): files of one series are sorted by their position along the slice
normal and each slice's Rescale Slope/Intercept is applied, so the array is in HU. ITK's world
is LPS; tfcovseg's is RAS+ (see ``tfcovseg.io.nifti``), so x and y flip sign.

A ``DicomSeries`` keeps the stored grid ("native": ``[k, row, column]``, slice ``k`` is the
file whose SOP Instance UID is ``sop_uids[k]``), because annotations such as MD.ai polygons are
given in a slice's rows and columns. ``DicomSeries.volume()`` reorients a native array to the
prepared-dataset convention (RAS+ ``[D, H, W]``) and keeps the stored orientation, so
``tfcovseg.io.nifti.to_source_grid`` writes results back on the DICOM grid.
"""

import dataclasses
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from tfcovseg.errors import TfcovsegError
from tfcovseg.files import atomic_path
from tfcovseg.io.checks import flag
from tfcovseg.io.nifti import Volume

log = logging.getLogger(__name__)

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
SOP_INSTANCE_UID = "0008|0018"
STUDY_INSTANCE_UID = "0020|000d"
SERIES_INSTANCE_UID = "0020|000e"
PATIENT_ID = "0010|0020"
IMAGE_POSITION = "0020|0032"
DICOM_MAGIC_END = 132  # "DICM" follows the 128-byte preamble of a DICOM file
SLICE_GAP_TOLERANCE = 0.01  # relative deviation of a slice step from the median before we warn


@dataclasses.dataclass
class DicomSeries:
    array: np.ndarray  # HU, float32, native [k, row, column]
    affine: np.ndarray  # RAS+ voxel-to-world of the native [column, row, k] grid
    sop_uids: list  # SOP Instance UID of each native slice k
    series_uid: str
    study_uid: str
    patient_id: str
    files: list  # one file per native slice k
    flags: list = dataclasses.field(default_factory=list)

    @property
    def ornt(self) -> np.ndarray:
        """nibabel orientation of the native [column, row, k] axes."""
        return nib.orientations.io_orientation(self.affine)

    def volume(self, array=None) -> Volume:
        """``array`` (default: the HU image), given on the native grid, as a RAS+ ``Volume``."""
        native = self.array if array is None else np.asarray(array)
        if native.shape != self.array.shape:
            raise ValueError(f"array shape {native.shape} is not the series' {self.array.shape}")
        ornt = self.ornt
        xyz = native.transpose(2, 1, 0)
        canonical = nib.orientations.apply_orientation(xyz, ornt)
        affine = self.affine @ nib.orientations.inv_ornt_aff(ornt, xyz.shape)
        return Volume(np.ascontiguousarray(canonical.transpose(2, 1, 0)), affine, ornt,
                      tuple(int(s) for s in xyz.shape))

    def sop_uids_in_d_order(self) -> list:
        """SOP UIDs of the slices of ``volume().array`` (axial series: native k maps onto D)."""
        k_axis, direction = self.ornt[2]
        if int(k_axis) != 2:
            raise TfcovsegError("the slices are not axial: no SOP UID per axial slice",
                                self.files[0])
        return list(self.sop_uids if direction > 0 else self.sop_uids[::-1])


def read_dicom_series(folder, series_uid: str | None = None) -> DicomSeries:
    """Read the CT series ``series_uid`` in ``folder`` (default: the one with the most files).

    Files of other series in the same folder are ignored; when there are several and no UID is
    given, a warning names them. ``folder`` may also be one file of the series.
    """
    folder = Path(folder)
    if folder.is_file():
        folder, series_uid = folder.parent, series_uid or _series_uid_of(folder)
    series = list_series(folder)
    if series_uid is None:
        series_uid = max(series, key=lambda uid: len(series[uid]))
        if len(series) > 1:
            others = ", ".join(f"{uid} ({len(f)} files)" for uid, f in series.items())
            log.warning("%s: %d series here (%s); reading the largest, %s", folder, len(series),
                        others, series_uid)
    elif series_uid not in series:
        raise TfcovsegError(f"no series {series_uid} here (found: {', '.join(series)})", folder)
    files = series[series_uid]
    flags = _unreadable_flags(folder, series)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.SetOutputPixelType(sitk.sitkFloat32)
    reader.MetaDataDictionaryArrayUpdateOn()
    warnings_shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # our flags report ITK's spacing warning
    try:
        image = reader.Execute()
    except RuntimeError as err:
        raise TfcovsegError(f"cannot read the DICOM series {series_uid}: {_first_line(err)}",
                            folder) from None
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(warnings_shown)
    array = sitk.GetArrayFromImage(image)
    if array.ndim != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise TfcovsegError(f"expected a greyscale CT series, got image size {image.GetSize()}",
                            folder)

    def tag(k, key):
        return reader.GetMetaData(k, key).strip(" \x00") if reader.HasMetaDataKey(k, key) else ""

    sop_uids = [tag(k, SOP_INSTANCE_UID) for k in range(len(files))]
    flags += _spacing_flags([tag(k, IMAGE_POSITION) for k in range(len(files))], image, folder)
    return DicomSeries(array=array.astype(np.float32, copy=False), affine=_ras_affine(image),
                       sop_uids=sop_uids, series_uid=series_uid,
                       study_uid=tag(0, STUDY_INSTANCE_UID), patient_id=tag(0, PATIENT_ID),
                       files=list(files), flags=flags)


def read_dicom_volume(folder, series_uid: str | None = None) -> Volume:
    """A DICOM CT series as a RAS+ ``Volume`` in HU, like ``tfcovseg.io.nifti.read_volume``."""
    return read_dicom_series(folder, series_uid).volume()


def list_series(folder) -> dict:
    """``{series UID: [files sorted by slice position]}`` of the DICOM files directly in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TfcovsegError("DICOM folder not found", folder)
    try:
        uids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
        series = {uid: list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid))
                  for uid in uids}
    except RuntimeError as err:
        raise TfcovsegError(f"cannot scan for DICOM files: {_first_line(err)}", folder) from None
    if not series:
        unreadable = _unreadable_files(folder, series)
        hint = f" ({len(unreadable)} DICOM files could not be parsed)" if unreadable else ""
        raise TfcovsegError(f"no DICOM series in this folder{hint}", folder)
    return series


def _unreadable_files(folder: Path, series: dict) -> list:
    """Files with the DICOM preamble that GDCM left out of every series (truncated, corrupt)."""
    listed = {Path(f).name for files in series.values() for f in files}
    return sorted(p.name for p in folder.iterdir()
                  if p.is_file() and p.name not in listed and _has_dicom_preamble(p))


def _has_dicom_preamble(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(DICOM_MAGIC_END)[DICOM_MAGIC_END - 4:] == b"DICM"


def _unreadable_flags(folder: Path, series: dict) -> list:
    unreadable = _unreadable_files(folder, series)
    if not unreadable:
        return []
    names = ", ".join(unreadable[:5]) + (" ..." if len(unreadable) > 5 else "")
    return flag("unreadable_files", folder, f"{len(unreadable)} left out: {names}")


def write_dicom_series(folder, array: np.ndarray, affine: np.ndarray, rescale=(1.0, -1024.0),
                       study_uid: str | None = None, series_uid: str | None = None,
                       patient_id: str = "anonymous") -> list:
    """Write a RAS+ ``[D, H, W]`` HU volume as an axial CT series; returns SOP UIDs in D order.

    Slices are stored as radiologists view them (rows anterior -> posterior, columns the
    patient's right -> left). ``rescale`` is one (slope, intercept) pair or one per slice;
    pixels are stored as int16 ``round((HU - intercept) / slope)``. Files are ``0000.dcm``...
    """
    array = np.asarray(array, np.float64)
    depth, height, width = array.shape
    pairs = [tuple(rescale)] * depth if np.ndim(rescale) == 1 else [tuple(p) for p in rescale]
    if len(pairs) != depth:
        raise ValueError(f"rescale has {len(pairs)} pairs for {depth} slices")
    study_uid, series_uid = study_uid or generate_uid(), series_uid or generate_uid()
    frame_uid = generate_uid()

    def world(column, row, d):  # LPS position of a stored pixel of slice d
        voxel = np.array([width - 1 - column, height - 1 - row, d, 1.0])
        return LPS_TO_RAS @ (affine @ voxel)[:3]

    along_row = world(1, 0, 0) - world(0, 0, 0)
    along_column = world(0, 1, 0) - world(0, 0, 0)
    sop_uids = []
    for d, (slope, intercept) in enumerate(pairs):
        stored = np.rint((array[d, ::-1, ::-1] - intercept) / slope)
        if stored.min() < np.iinfo(np.int16).min or stored.max() > np.iinfo(np.int16).max:
            raise ValueError(f"slice {d}: HU do not fit int16 with slope {slope}, "
                             f"intercept {intercept}")
        ds = _ct_slice(stored.astype(np.int16), slope, intercept)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.FrameOfReferenceUID, ds.PatientID = frame_uid, patient_id
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.InstanceNumber = d + 1
        ds.ImagePositionPatient = [float(v) for v in world(0, 0, d)]
        ds.ImageOrientationPatient = [float(v) for v in np.concatenate(
            [along_row / np.linalg.norm(along_row), along_column / np.linalg.norm(along_column)])]
        ds.PixelSpacing = [float(np.linalg.norm(along_column)), float(np.linalg.norm(along_row))]
        ds.SliceThickness = float(np.linalg.norm(affine[:3, 2]))
        with atomic_path(Path(folder) / f"{d:04d}.dcm", suffix=".dcm") as tmp:
            ds.save_as(tmp, enforce_file_format=True)
        sop_uids.append(ds.SOPInstanceUID)
    return sop_uids


def _ct_slice(pixels: np.ndarray, slope: float, intercept: float) -> pydicom.Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.Modality = "CT"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept = f"{slope:g}", f"{intercept:g}"
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    return ds


def _ras_affine(image: sitk.Image) -> np.ndarray:
    """RAS+ voxel-to-world affine of an ITK image's [i, j, k] grid."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = LPS_TO_RAS @ direction @ np.diag(image.GetSpacing())
    affine[:3, 3] = LPS_TO_RAS @ np.array(image.GetOrigin())
    return affine


def _spacing_flags(positions: list, image: sitk.Image, folder) -> list:
    """Flag (and warn about) missing or unevenly spaced slices, which ITK resamples silently."""
    if len(positions) < 3 or not all(positions):
        return []
    normal = np.array(image.GetDirection()).reshape(3, 3)[:, 2]
    heights = np.array([[float(v) for v in p.split("\\")] for p in positions]) @ normal
    steps = np.diff(heights)
    median = np.median(steps)
    if median == 0 or np.max(np.abs(steps - median)) <= SLICE_GAP_TOLERANCE * abs(median):
        return []
    return flag("uneven_slices", folder, f"steps {steps.min():.3g}..{steps.max():.3g} mm")


def _series_uid_of(path: Path) -> str:
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SeriesInstanceUID"])
    except (pydicom.errors.InvalidDicomError, OSError, EOFError, ValueError) as err:
        raise TfcovsegError(f"not a readable DICOM file ({err})", path) from None
    if "SeriesInstanceUID" not in header:
        raise TfcovsegError("DICOM file without a Series Instance UID", path)
    return str(header.SeriesInstanceUID)


def _first_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__
