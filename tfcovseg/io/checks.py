"""Checks on CT volumes and masks: source volumes before they enter a prepared dataset, a
prepared dataset's case files before they are used, and a CT before it is predicted.

A check of a source volume either raises ``DataError`` (the case cannot be used: it is skipped
and reported) or returns flags: short machine-readable words stored in the manifest, each also
logged as a warning (the case is usable but a reader should know). The other checks raise
``DataError`` (or ``ConfigError`` for an option) naming the file. ``unwindow`` restores HU from
a volume that the user declares windowed (``--input-window``).
"""

import functools
import logging
import os

import numpy as np

from tfcovseg.errors import ConfigError, DataError
from tfcovseg.io.manifest import MANIFEST, MASK_LABEL_FIELDS, Case, Dataset
from tfcovseg.io.nifti import Volume, read_grid, read_volume, spacing_mm

log = logging.getLogger(__name__)

WINDOWED_RANGE = (0.0, 255.0)
# Ma et al.'s radiopaedia volumes are HU windowed [-1250, 250] and rescaled to [0, 255].
MA_RADIOPAEDIA_WINDOW_HU = (-1250.0, 250.0)
AFFINE_TOLERANCE_MM = 1e-3  # affines closer than this (any entry, mm) describe the same grid
SHOWN_VALUES = 8  # at most this many offending mask values in a message
CHECKED_MASKS = 65536  # mask files whose values are remembered as checked (a few MB at most)

FLAGS = {
    "windowed": "intensities lie in 0..255: the volume looks windowed, not in HU",
    "not_hu": "no intensity below 0: raw stored values (missing rescale intercept?), not HU",
    "affine_mismatch": "a mask's affine differs from the image's: masks are used in index space",
    "unknown_label_values": "the mask holds values this source does not define: ignored",
    "uneven_slices": "slice positions are unevenly spaced (missing slices?)",
    "unreadable_files": "some DICOM files of the series could not be read",
    "windowed_restored": "HU restored from an 8-bit windowed image: rounded, clipped to the window",
    "no_spacing": "the source files hold no voxel spacing: 1 mm assumed",
}


def intensity_problem(array) -> str | None:
    """``"windowed"`` (all values in 0..255), ``"not_hu"`` (none below 0) or None (looks like HU)."""
    low, high = float(np.min(array)), float(np.max(array))
    if WINDOWED_RANGE[0] <= low and high <= WINDOWED_RANGE[1]:
        return "windowed"
    return "not_hu" if low >= 0 else None


def intensity_flags(image: Volume, where) -> list:
    """``["windowed"]`` or ``["not_hu"]`` when the intensities do not look like CT numbers."""
    problem = intensity_problem(image.array)
    return flag(problem, where, f"range {_range(image.array)}") if problem else []


def mask_grid_flags(mask: Volume, image: Volume, where) -> list:
    """Error when a mask cannot be laid on the image; ``["affine_mismatch"]`` when it is off."""
    if mask.array.shape != image.array.shape:
        raise DataError(f"mask shape {mask.array.shape} (D, H, W) differs from the image's "
                        f"{image.array.shape}", where)
    if mask.orientation != image.orientation:
        raise DataError(f"mask orientation {mask.orientation} differs from the image's "
                        f"{image.orientation}", where)
    offset = float(np.abs(mask.affine - image.affine).max())
    if offset > AFFINE_TOLERANCE_MM:
        return flag("affine_mismatch", where, f"largest difference {offset:.3g} mm")
    return []


def map_values(array: np.ndarray, mapping: dict | None, where) -> tuple:
    """Source label values -> ours, as ``(uint8 array, flags)``; ``mapping=None``: ``> 0`` -> 1.

    Values the mapping does not name become 0 and raise the ``unknown_label_values`` flag.
    """
    if mapping is None:
        return (array > 0).astype(np.uint8), []
    out = np.zeros(array.shape, np.uint8)
    for source_value, value in mapping.items():
        out[array == source_value] = value
    unknown = sorted(set(np.unique(array).tolist()) - set(mapping) - {0})
    flags = flag("unknown_label_values", where, f"values {unknown}") if unknown else []
    return out, flags


def flag(name: str, where, detail: str = "") -> list:
    """Log the warning for flag ``name`` about ``where`` and return ``[name]``."""
    log.warning("%s: %s%s", where, FLAGS[name], f" ({detail})" if detail else "")
    return [name]


def check_case(dataset: Dataset, case: Case, keys=("image", "label")) -> tuple:
    """The ``(D, H, W)`` shape of ``case`` once its files named by ``keys`` pass the checks.

    From the headers: each file is 3D and each mask ("label", "lung") lies on the image's grid
    (shape, and RAS+ affine: spacing, orientation and position). From the mask data: only the
    values the manifest declares (``labels``, ``lung_labels``); a mask file that passed is not
    read again while it keeps its size and modification time (training checks its cases before
    every pipeline it builds). Errors name the case and file.
    """
    shape, affine = read_grid(dataset.path(case.image))
    for key in (k for k in keys if k != "image"):
        path = dataset.path(getattr(case, key))
        mask_shape, mask_affine = read_grid(path)
        if mask_shape != shape:
            raise DataError(f"case {case.id!r}: {key} shape {mask_shape} differs from the image "
                            f"shape {shape} (D, H, W)", path)
        offset = float(np.abs(mask_affine - affine).max())
        if offset > AFFINE_TOLERANCE_MM:
            raise DataError(f"case {case.id!r}: the {key} grid differs from the image's "
                            f"(spacing {_spacing(mask_affine)} vs {_spacing(affine)} mm along "
                            f"D, H, W; largest affine difference {offset:.3g} mm)", path)
        stat = os.stat(path)
        _check_mask_file(str(path), (stat.st_mtime_ns, stat.st_size),
                         tuple(sorted(dataset.mask_labels(key).items())),
                         f"case {case.id!r}: {key}", f'declared in {MANIFEST} "{MASK_LABEL_FIELDS[key]}"')
    return shape


@functools.lru_cache(maxsize=CHECKED_MASKS)
def _check_mask_file(path: str, stamp: tuple, allowed: tuple, what: str, expected: str) -> None:
    """``check_mask_values`` of the mask at ``path``, once per ``stamp`` (mtime, size) and
    declaration: a failure raises and is not remembered."""
    check_mask_values(read_volume(path).array, dict(allowed), path, what, expected)


def check_mask_values(array, allowed: dict, where, what: str, expected: str) -> None:
    """Refuse a mask holding a value that ``allowed`` ({value: name}) does not name."""
    undeclared = [v for v in np.unique(array).tolist() if v not in allowed]
    if undeclared:
        shown = ", ".join(f"{v:g}" for v in undeclared[:SHOWN_VALUES])
        more = " ..." if len(undeclared) > SHOWN_VALUES else ""
        names = ", ".join(f"{value} {name}" for value, name in sorted(allowed.items()))
        raise DataError(f"{what} values {shown}{more} are not {expected} ({names})", where)


def ct_in_hu(array, where, window=None) -> np.ndarray:
    """The HU of a CT to predict: ``array`` itself when it looks like HU, or ``unwindow``-ed
    when the user declares the ``window`` (low, high HU) that a 0..255 volume was cut from.

    Anything else is refused, naming ``where``, the range found and ``--input-window``: a model
    trained on HU marks the whole lung on windowed or raw stored values.
    """
    check_window(window)
    problem = intensity_problem(array)
    if window is not None:
        if problem != "windowed":
            raise DataError(f"--input-window {window[0]:g} {window[1]:g} is for volumes "
                            f"windowed to 0..255, but the intensities range {_range(array)}",
                            where)
        return unwindow(array, window)
    if problem == "windowed":
        low, high = MA_RADIOPAEDIA_WINDOW_HU
        raise DataError(f"intensities range {_range(array)}: the volume looks windowed to "
                        "0..255, not in HU; declare the window it was cut from with "
                        "--input-window LOW HIGH (HU; Ma et al.'s radiopaedia volumes: "
                        f"--input-window {low:g} {high:g})", where)
    if problem == "not_hu":
        raise DataError(f"intensities range {_range(array)}: no value below 0, so not HU (raw "
                        "stored values, missing rescale intercept?); convert it to HU first",
                        where)
    return array


def check_window(window) -> None:
    """Refuse an ``--input-window`` that is not two finite HU values, low below high."""
    if window is None:
        return
    low, high = (float(v) for v in window)
    if not (np.isfinite([low, high]).all() and low < high):
        raise ConfigError(f"--input-window LOW HIGH needs finite HU with LOW < HIGH, got "
                          f"{low:g} {high:g}")


def unwindow(array, window) -> np.ndarray:
    """HU of a volume that was windowed to ``window`` (low, high HU) and rescaled to 0..255:
    ``value / 255 * (high - low) + low``, the inverse of that linear rescaling."""
    low, high = (float(v) for v in window)
    scale = (high - low) / (WINDOWED_RANGE[1] - WINDOWED_RANGE[0])
    return ((np.asarray(array, np.float32) - WINDOWED_RANGE[0]) * scale + low).astype(np.float32)


def _range(array) -> str:
    return f"{float(np.min(array)):g}..{float(np.max(array)):g}"


def _spacing(affine) -> str:
    return "x".join(f"{size:.4g}" for size in spacing_mm(affine))
