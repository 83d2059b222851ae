"""``tfcovseg predict``: segment lesions in one CT (NIfTI file or DICOM series folder).

Outputs are written on the input's own grid and affine (the mask has the input's shape and
orientation, so it overlays the CT in any viewer). Default paths, next to the input
(``ct.nii.gz`` -> ``ct``; a DICOM folder ``series/`` -> ``series`` beside the folder)::

    ct_lesions.nii.gz                  the lesion mask (uint8, 1 = lesion); or --out
    ct_lesions_probabilities.nii.gz    lesion probability (float32), with --probabilities
    ct_lesions_report.json             volumes in mL, per lung, % of lung affected
    ct_lesions_report.png              axial slices in the lung window with the lesion overlay

(with ``--out NAME.nii.gz`` the other files are ``NAME_probabilities.nii.gz`` etc.). An input
inside a prepared dataset (a folder above it holds ``dataset.json``) needs ``--out``: predict
does not write into a dataset.

The CT must be in HU (``tfcovseg.io.checks.ct_in_hu``): a volume windowed to 0..255 (Ma et
al.'s radiopaedia volumes) is refused unless ``--input-window LOW HIGH`` declares the HU window
it was cut from, which maps it back to HU (``unwindow``) before prediction.

The CT's voxel spacing comes from its header (DICOM: pixel spacing and slice positions); it
must be positive, and a patch-mode model trained at a target spacing resamples the CT to it and
the probabilities back, so the mask still lands on the CT's own grid.

The model is a run, an export, a converted faimed3d U-Net or a grid cell of a lesion experiment
(``tfcovseg.infer.predictor.load_predictor``); a cell runs slice by slice on the CT's own grid.

Lung volumes come from ``--lung-mask`` (a NIfTI on the CT's grid; any labels: two labels are
read as the two lungs, a binary mask is split at the body midline), or from ``--lung-model`` (a
grid cell of the ``lungs`` experiment, run slice by slice, split at the midline), or else from
the simple threshold extraction of ``tfcovseg.infer.lungs``, to which the predicted lesion is
added (dense lesions are not aerated, so a threshold cannot find them). A ``lesions_in_lungs``
cell takes the lungs of ``--lung-mask`` or ``--lung-model`` as its input mask.
"""

import dataclasses
from pathlib import Path

import numpy as np

from tfcovseg.errors import ConfigError, TfcovsegError
from tfcovseg.files import write_json
from tfcovseg.infer import GRID_TOLERANCE_MM
from tfcovseg.infer.lungs import body_midline, extract_lungs, split_sides
from tfcovseg.infer.predictor import check_fits, load_lung_predictor, load_predictor
from tfcovseg.infer.report import format_summary, volume_report, write_overlay_png
from tfcovseg.io.checks import ct_in_hu
from tfcovseg.io.manifest import MANIFEST
from tfcovseg.io.nifti import read_volume, save_image, to_source_grid
from tfcovseg.models.sliding_window import lesion_mask
from tfcovseg.settings.inference import check_sliding_window, check_tta_axes

NIFTI_SUFFIXES = (".nii.gz", ".nii")


@dataclasses.dataclass
class OutputPaths:
    mask: Path
    probabilities: Path
    report: Path
    png: Path


def output_paths(input_path, out=None) -> OutputPaths:
    """Where predict writes (see the module docstring); no default inside a prepared dataset."""
    if out is None:
        input_path = Path(input_path)
        dataset = _enclosing_dataset(input_path)
        if dataset is not None:
            raise ConfigError(f"lies inside the prepared dataset {dataset} ({MANIFEST}); predict "
                              "does not write into a dataset: give --out MASK.nii.gz outside it",
                              input_path)
        out = input_path.parent / f"{_strip_nifti_suffix(input_path.name)}_lesions.nii.gz"
    out = Path(out)
    if not out.name.endswith(NIFTI_SUFFIXES):
        raise TfcovsegError("the output mask must be a .nii.gz or .nii file", out)
    base = out.parent / _strip_nifti_suffix(out.name)
    return OutputPaths(
        mask=out,
        probabilities=Path(f"{base}_probabilities.nii.gz"),
        report=Path(f"{base}_report.json"),
        png=Path(f"{base}_report.png"),
    )


def _strip_nifti_suffix(name: str) -> str:
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _enclosing_dataset(path: Path) -> Path | None:
    """The nearest folder above ``path`` that holds a prepared dataset's manifest, or None."""
    return next((folder for folder in path.resolve().parents if (folder / MANIFEST).is_file()),
                None)


def read_ct(path):
    """A ``Volume`` from a NIfTI file or a DICOM series folder."""
    path = Path(path)
    if path.is_dir():
        from tfcovseg.io.dicom import read_dicom_volume

        return read_dicom_volume(path)
    return read_volume(path)


def read_lung_mask(path, volume) -> np.ndarray:
    """A lung mask NIfTI as integer labels on ``volume``'s RAS+ grid; refused on another grid."""
    lung = read_volume(path)
    same_grid = lung.array.shape == volume.array.shape and np.allclose(
        lung.affine, volume.affine, atol=GRID_TOLERANCE_MM
    )
    if not same_grid:
        raise TfcovsegError(
            f"the lung mask is not on the CT's grid (shape {lung.array.shape} vs "
            f"{volume.array.shape}, or a different affine)",
            path,
        )
    return np.rint(lung.array).astype(np.int16)


def predict_ct(model_dir, input_path, out=None, probabilities=False, lung_mask=None,
               overlap=None, batch_size=None, tta_axes=None, input_window=None,
               lung_model=None) -> dict:
    """Predict, write the mask (and probabilities), the report JSON and PNG; return the report.

    ``overlap``, ``batch_size``: the sliding window; ``tta_axes``: test-time mirroring
    (``load_predictor``; None: its defaults). ``lung_mask`` (a NIfTI) or ``lung_model`` (a
    ``lungs`` grid cell): the lungs of the report (module docstring).
    ``input_window`` (low, high HU): the window a 0..255 input was cut from (module docstring).
    Every input is checked before the model is loaded (and, against the model's input spec:
    ``check_fits``, after it is loaded) before anything is written.
    """
    paths = output_paths(input_path, out)
    if lung_mask is not None and lung_model is not None:
        raise ConfigError("give the lungs either as --lung-mask or as --lung-model, not both")
    check_sliding_window(overlap, batch_size)
    check_tta_axes(tta_axes)
    volume = read_ct(input_path)
    volume = dataclasses.replace(volume, array=ct_in_hu(volume.array, input_path, input_window))
    given_lung = None if lung_mask is None else read_lung_mask(lung_mask, volume)
    predictor = load_predictor(model_dir, overlap=overlap, batch_size=batch_size,
                               tta_axes=tta_axes)
    lungs_of = None if lung_model is None else load_lung_predictor(lung_model, batch_size)
    if predictor.takes_lungs and given_lung is None and lungs_of is None:
        raise ConfigError("a grid cell of the lesions_in_lungs experiment segments lung-masked "
                          "slices: give the lungs with --lung-mask or --lung-model", model_dir)
    check_fits(predictor.spec, volume.array.shape, volume.spacing, input_path)
    if lungs_of is not None:
        given_lung = lesion_mask(lungs_of(volume.array, volume.spacing)).astype(np.int16)
    lesion_probability = predictor(volume.array, volume.spacing, lungs=given_lung)
    lesion = lesion_mask(lesion_probability)
    save_image(to_source_grid(lesion.astype(np.uint8), volume), paths.mask)
    if probabilities:
        save_image(to_source_grid(lesion_probability, volume), paths.probabilities)

    midline = body_midline(volume.array)
    if lungs_of is not None:
        lung, lung_source = given_lung, f"model: {lung_model}"
    elif given_lung is not None:
        lung, lung_source = given_lung, f"given: {lung_mask}"
    else:
        lung, lung_source = extract_lungs(volume.array) | lesion, "threshold extraction"
    report = {
        "input": str(input_path),
        "input_window_hu": None if input_window is None else [float(v) for v in input_window],
        "model": predictor.source,
        "mask": str(paths.mask),
        "probabilities": str(paths.probabilities) if probabilities else None,
        "shape": list(volume.array.shape),
        "spacing_mm": list(volume.spacing),
        "model_spacing_mm": None if predictor.spec.spacing is None else list(predictor.spec.spacing),
        "tta_axes": None if predictor.tta_axes is None else list(predictor.tta_axes),
        "lung_source": lung_source,
    }
    report.update(volume_report(lesion, volume.spacing, split_sides(lung, midline)))
    write_json(paths.report, report)
    write_overlay_png(paths.png, volume.array, lesion, volume.spacing, lung=lung > 0)
    print(format_summary(report))
    print(f"mask: {paths.mask}\nreport: {paths.report} and {paths.png}")
    return report
