"""Checks on source volumes before they enter a prepared dataset.

A check either raises ``TfcovsegError`` (the case cannot be used: it is skipped and reported)
or returns flags: short machine-readable words stored in the manifest, each also logged as a
warning (the case is usable but a reader should know).
"""

import logging

import numpy as np

from tfcovseg.errors import TfcovsegError
from tfcovseg.io.nifti import Volume

log = logging.getLogger(__name__)

# Ma et al.'s radiopaedia volumes are HU windowed [-1250, 250] and rescaled to [0, 255].
WINDOWED_RANGE = (0.0, 255.0)
AFFINE_TOLERANCE_MM = 1e-3  # affines closer than this (any entry, mm) describe the same grid

FLAGS = {
    "windowed": "intensities lie in 0..255: the volume looks windowed, not in HU",
    "not_hu": "no intensity below 0: raw stored values (missing rescale intercept?), not HU",
    "affine_mismatch": "a mask's affine differs from the image's: masks are used in index space",
    "unknown_label_values": "the mask holds values this source does not define: ignored",
    "uneven_slices": "slice positions are unevenly spaced (missing slices?)",
    "unreadable_files": "some DICOM files of the series could not be read",
}


def intensity_flags(image: Volume, where) -> list:
    """``["windowed"]`` or ``["not_hu"]`` when the intensities do not look like CT numbers."""
    low, high = float(image.array.min()), float(image.array.max())
    if WINDOWED_RANGE[0] <= low and high <= WINDOWED_RANGE[1]:
        return flag("windowed", where, f"range {low:g}..{high:g}")
    if low >= 0:
        return flag("not_hu", where, f"range {low:g}..{high:g}")
    return []


def mask_grid_flags(mask: Volume, image: Volume, where) -> list:
    """Error when a mask cannot be laid on the image; ``["affine_mismatch"]`` when it is off."""
    if mask.array.shape != image.array.shape:
        raise TfcovsegError(f"mask shape {mask.array.shape} (D, H, W) differs from the image's "
                            f"{image.array.shape}", where)
    if mask.orientation != image.orientation:
        raise TfcovsegError(f"mask orientation {mask.orientation} differs from the image's "
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
