"""The prediction report: lesion and lung volumes as numbers, a printed summary, an overlay PNG.

Volumes are voxel counts times the voxel volume (mm^3 / 1000 = mL). "Affected" is the share
of a lung's volume that is predicted lesion. Lungs are split into right and left
(``tfcovseg.infer.lungs.split_sides``); lesion voxels outside the lung mask are reported apart.
"""

import math

import numpy as np

from tfcovseg.files import atomic_path
from tfcovseg.io.nifti import radiological

MM3_PER_ML = 1000.0
LUNG_WINDOW_HU = (-1350.0, 150.0)  # lung window: level -600, width 1500
OVERLAY_SLICES = 4
OVERLAY_ALPHA = 0.45
SIDES = ("right", "left")


def _ml(mask, voxel_ml: float) -> float:
    return float(np.count_nonzero(mask)) * voxel_ml


def _percent(part: float, whole: float):
    return 100.0 * part / whole if whole > 0 else None


def volume_report(lesion, spacing, sides: dict) -> dict:
    """Lesion volume (mL), and lung volume and lesion share per lung ``sides`` ({"right": mask,
    "left": mask})."""
    voxel_ml = math.prod(spacing) / MM3_PER_ML
    lesion = np.asarray(lesion, bool)
    report = {"voxel_ml": voxel_ml, "lesion_ml": _ml(lesion, voxel_ml)}
    lungs = {side: _ml(sides[side], voxel_ml) for side in SIDES}
    in_lungs = {side: _ml(lesion & sides[side], voxel_ml) for side in SIDES}
    lungs["total"] = sum(lungs.values())
    in_lungs["total"] = sum(in_lungs.values())
    report["lung_ml"] = lungs
    report["lesion_in_lung_ml"] = in_lungs
    report["lesion_outside_lungs_ml"] = report["lesion_ml"] - in_lungs["total"]
    report["affected_percent"] = {k: _percent(in_lungs[k], lungs[k]) for k in lungs}
    return report


def format_summary(report: dict) -> str:
    """A few lines for the terminal."""
    lines = [f"lesion volume: {report['lesion_ml']:.1f} mL",
             f"lungs ({report['lung_source']}):"]
    for side in (*SIDES, "total"):
        share = report["affected_percent"][side]
        share_text = "n/a" if share is None else f"{share:.1f} %"
        lines.append(
            f"  {side:>5}: lung {report['lung_ml'][side]:8.1f} mL, "
            f"lesion {report['lesion_in_lung_ml'][side]:7.1f} mL, affected {share_text}"
        )
    return "\n".join(lines)


def overlay_slices(lesion, count: int = OVERLAY_SLICES) -> list:
    """Axial slice indices to show: spread over the slices with lesion (or over the volume)."""
    lesion = np.asarray(lesion, bool)
    candidates = np.nonzero(lesion.any(axis=(1, 2)))[0]
    if candidates.size == 0:
        candidates = np.arange(lesion.shape[0])
    picks = np.linspace(0, candidates.size - 1, min(count, candidates.size)).round().astype(int)
    return sorted({int(candidates[i]) for i in picks})


def write_overlay_png(path, hu, lesion, spacing, lung=None, count: int = OVERLAY_SLICES) -> None:
    """Axial slices in the lung window with the lesion in red (and the lung outline), atomically.

    Shown in radiological convention (``tfcovseg.io.nifti.radiological``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    slices = overlay_slices(lesion, count)
    figure, axes = plt.subplots(1, len(slices), figsize=(3.2 * len(slices), 3.6), squeeze=False)
    aspect = spacing[1] / spacing[2]
    for ax, d in zip(axes[0], slices):
        ax.imshow(radiological(hu[d]), cmap="gray", vmin=LUNG_WINDOW_HU[0], vmax=LUNG_WINDOW_HU[1],
                  aspect=aspect, interpolation="nearest")
        shown = np.ma.masked_where(~radiological(lesion[d]), np.ones(lesion.shape[1:]))
        ax.imshow(shown, cmap="autumn", alpha=OVERLAY_ALPHA, aspect=aspect, interpolation="nearest")
        if lung is not None and lung[d].any():
            ax.contour(radiological(lung[d]).astype(float), levels=[0.5], colors="cyan",
                       linewidths=0.6)
        ax.set_title(f"slice {d}", fontsize=9)
        ax.set_axis_off()
    figure.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=100, format="png")
    plt.close(figure)
