"""A simple lung extraction from HU, and the left/right split of a lung mask, for reports.

Not a lung model: a classical threshold pipeline good enough to put lesion volumes in relation
to the lungs when no lung mask is given. On an ``[D, H, W]`` volume of tfcovseg's RAS+ grid
(column ``w`` runs from the patient's left to right):

1. air and aerated lung = voxels below ``AIR_THRESHOLD_HU`` (-320 HU, the usual threshold of
   threshold-based lung segmentation, e.g. the Data Science Bowl 2017 preprocessing tutorials);
2. air outside the body = air components (3D) touching the in-plane border of the volume
   (not the first or last slice, which may cut through the lungs); removed. The body is what
   remains of the volume after removing it;
3. the two largest remaining components are the lungs (one if the lungs touch; components
   smaller than ``MIN_LUNG_FRACTION`` of the largest are bowel gas or noise and are dropped);
4. holes are filled slice by slice: vessels and airway walls are denser than the threshold;
5. left and right are split at the body's midline (mean column of the body mask).

Dense lesions (consolidation) at the lung's border are not aerated and fall outside step 1;
``tfcovseg.infer.report`` therefore adds the predicted lesion to an extracted lung mask.
"""

import numpy as np
from scipy import ndimage

AIR_THRESHOLD_HU = -320.0
LUNG_COUNT = 2
MIN_LUNG_FRACTION = 0.1


def outside_air(hu, threshold_hu: float = AIR_THRESHOLD_HU) -> np.ndarray:
    """Air components connected to the in-plane border of the volume ([D, H, W] bool)."""
    labels, _ = ndimage.label(np.asarray(hu) < threshold_hu)
    border = np.concatenate([
        labels[:, 0, :].ravel(), labels[:, -1, :].ravel(),
        labels[:, :, 0].ravel(), labels[:, :, -1].ravel(),
    ])
    border_labels = np.unique(border[border > 0])
    return np.isin(labels, border_labels)


def body_midline(hu, threshold_hu: float = AIR_THRESHOLD_HU) -> float:
    """Column (W index) of the body's centre: the boundary between left and right."""
    body = ~outside_air(hu, threshold_hu)
    columns = np.nonzero(body.any(axis=(0, 1)))[0]
    if columns.size == 0:
        return (np.asarray(hu).shape[2] - 1) / 2
    weights = body.sum(axis=(0, 1))[columns]
    return float(np.average(columns, weights=weights))


def extract_lungs(hu, threshold_hu: float = AIR_THRESHOLD_HU) -> np.ndarray:
    """Both lungs as one [D, H, W] bool mask (see the module docstring for the steps)."""
    hu = np.asarray(hu)
    inner_air = (hu < threshold_hu) & ~outside_air(hu, threshold_hu)
    labels, count = ndimage.label(inner_air)
    if count == 0:
        return np.zeros(hu.shape, bool)
    sizes = ndimage.sum_labels(inner_air, labels, index=np.arange(1, count + 1))
    largest = np.argsort(sizes)[::-1][:LUNG_COUNT]
    keep = [i + 1 for i in largest if sizes[i] >= MIN_LUNG_FRACTION * sizes[largest[0]]]
    lungs = np.isin(labels, keep)
    for d in range(lungs.shape[0]):
        lungs[d] = ndimage.binary_fill_holes(lungs[d])
    return lungs


def split_sides(lung, midline: float) -> dict:
    """``{"right": mask, "left": mask}`` of a lung mask on the RAS+ [D, H, W] grid.

    A mask with two labels keeps them (whichever value a dataset uses for which side: the label
    whose centre lies further right is the right lung); a binary mask is cut at ``midline``.
    """
    lung = np.asarray(lung)
    values = [v for v in np.unique(lung) if v != 0]
    if len(values) == LUNG_COUNT:
        centres = [np.nonzero(lung == v)[2].mean() for v in values]
        right, left = (values[0], values[1]) if centres[0] > centres[1] else (values[1], values[0])
        return {"right": lung == right, "left": lung == left}
    inside = lung > 0
    right_columns = np.arange(lung.shape[2]) > midline
    return {"right": inside & right_columns, "left": inside & ~right_columns}
