"""Volume metrics as Ma et al.'s COVID-19-CT-Seg benchmark computes them.

The benchmark's ``utils/COVID-19-Seg-Evaluation.py`` scores a case with DeepMind's
``surface-distance`` package (PyPI ``surface-distance`` 0.1, identical to Ma's copy):
Dice = ``compute_dice_coefficient(gt, seg)`` and normalized surface Dice (NSD) =
``compute_surface_dice_at_tolerance(compute_surface_distances(gt, seg, spacing), tolerance)``
with the spacing taken from the ground truth's NIfTI header (``get_zooms()``) and a tolerance of
3 mm for lesions and 1 mm for lungs.

Both functions take masks and spacing in the same axis order: a NIfTI file's own ``[x, y, z]``
array with ``header.get_zooms()`` (as the benchmark does), or tfcovseg's in-memory ``[D, H, W]``
array with ``Volume.spacing`` (D, H, W). Mixing the two orders applies the slice thickness to
the wrong axis.

Empty masks follow the benchmark's convention, handled here because ``surface-distance`` 0.1
fails on them under NumPy 2 (it uses ``np.Inf``): both masks empty -> NaN (the case has nothing
to score; summaries exclude and count it), exactly one empty -> 0.
"""

import math
import warnings

import numpy as np
import surface_distance

LESION_TOLERANCE_MM = 3.0  # Ma et al.'s benchmark, lesions
LUNG_TOLERANCE_MM = 1.0  # Ma et al.'s benchmark, lungs


def _as_masks(gt, seg):
    gt = np.asarray(gt).astype(bool)
    seg = np.asarray(seg).astype(bool)
    if gt.shape != seg.shape:
        raise ValueError(f"masks differ in shape: ground truth {gt.shape}, "
                         f"segmentation {seg.shape}")
    return gt, seg


def _empty_score(gt, seg):
    """Ma's convention when a mask is empty: NaN if both are, 0 if one is; None otherwise."""
    gt_empty, seg_empty = not gt.any(), not seg.any()
    if gt_empty and seg_empty:
        return math.nan
    if gt_empty or seg_empty:
        return 0.0
    return None


def dice(gt, seg) -> float:
    """Sørensen-Dice coefficient of two binary masks (NaN if both are empty)."""
    gt, seg = _as_masks(gt, seg)
    empty = _empty_score(gt, seg)
    if empty is not None:
        return empty
    return float(surface_distance.compute_dice_coefficient(gt, seg))


def surface_dice(gt, seg, spacing_mm, tolerance_mm: float = LESION_TOLERANCE_MM) -> float:
    """Normalized surface Dice at ``tolerance_mm``; ``spacing_mm`` in the masks' axis order."""
    gt, seg = _as_masks(gt, seg)
    if len(spacing_mm) != gt.ndim:
        raise ValueError(f"spacing {tuple(spacing_mm)} does not match a {gt.ndim}D mask")
    empty = _empty_score(gt, seg)
    if empty is not None:
        return empty
    with warnings.catch_warnings():
        # surface-distance 0.1 imports from scipy.ndimage's deprecated sub-namespaces
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="surface_distance")
        distances = surface_distance.compute_surface_distances(
            gt, seg, [float(s) for s in spacing_mm]
        )
    return float(surface_distance.compute_surface_dice_at_tolerance(distances, tolerance_mm))
