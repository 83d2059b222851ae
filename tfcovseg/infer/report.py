"""The prediction report: lesion and lung volumes as numbers, a printed summary, an overlay PNG.

Volumes are voxel counts times the voxel volume (mm^3 / 1000 = mL). "Affected" is the share
of a lung's volume that is predicted lesion, counting lesion inside that lung only. Lungs are
split into right and left (``tfcovseg.infer.lungs.split_sides``); lesion voxels outside the
lung mask are reported apart.

Severity follows MosMedData's CT-0..CT-4 scale (Morozov et al., 2020, the categories of the
MosMed studies' folders) on the share of lung involved, per lung and for both lungs: CT-0 no
lesion voxel in the lung, CT-1 under 25 %, CT-2 from 25 % to under 50 %, CT-3 from 50 % to under
75 %, CT-4 75 % and more (a boundary belongs to the higher category: exactly 25 % is CT-2). The
rule is decided on voxel counts in integers, so a boundary is exact; ``SEVERITY_RULE`` states it
in the report.
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
# MosMedData's scale: (category, lowest share of lung involved in %, inclusive), highest first
SEVERITY_BOUNDS = (("CT-4", 75), ("CT-3", 50), ("CT-2", 25))
SEVERITY_RULE = ("MosMedData CT-0..CT-4 from the share of the lung's volume involved by lesion "
                 "inside that lung: CT-0 0 % (no lesion voxel), CT-1 above 0 and under 25 %, "
                 "CT-2 25 % to under 50 %, CT-3 50 % to under 75 %, CT-4 75 % and more; a "
                 "boundary belongs to the higher category (exactly 25 % is CT-2); null without "
                 "a lung volume")


def _ml(mask, voxel_ml: float) -> float:
    return float(np.count_nonzero(mask)) * voxel_ml


def _percent(part: float, whole: float):
    return 100.0 * part / whole if whole > 0 else None


def ct_severity(lesion_voxels: int, lung_voxels: int) -> str | None:
    """MosMedData's category of a lung with ``lesion_voxels`` of its ``lung_voxels`` involved
    (``SEVERITY_RULE``); None for an empty lung."""
    if lung_voxels <= 0:
        return None
    if lesion_voxels <= 0:
        return "CT-0"
    for category, lowest_percent in SEVERITY_BOUNDS:
        if 100 * lesion_voxels >= lowest_percent * lung_voxels:
            return category
    return "CT-1"


def volume_report(lesion, spacing, sides: dict) -> dict:
    """Lesion volume (mL), and per lung ``sides`` ({"right": mask, "left": mask}) and both: lung
    volume, lesion inside it, the share affected and the CT severity category."""
    voxel_ml = math.prod(spacing) / MM3_PER_ML
    lesion = np.asarray(lesion, bool)
    lung_voxels = {side: int(np.count_nonzero(sides[side])) for side in SIDES}
    in_lung_voxels = {side: int(np.count_nonzero(lesion & sides[side])) for side in SIDES}
    lung_voxels["total"] = sum(lung_voxels.values())
    in_lung_voxels["total"] = sum(in_lung_voxels.values())
    lungs = {k: n * voxel_ml for k, n in lung_voxels.items()}
    in_lungs = {k: n * voxel_ml for k, n in in_lung_voxels.items()}
    report = {"voxel_ml": voxel_ml, "lesion_ml": _ml(lesion, voxel_ml)}
    report["lung_ml"] = lungs
    report["lesion_in_lung_ml"] = in_lungs
    report["lesion_outside_lungs_ml"] = report["lesion_ml"] - in_lungs["total"]
    report["affected_percent"] = {k: _percent(in_lungs[k], lungs[k]) for k in lungs}
    report["severity"] = {k: ct_severity(in_lung_voxels[k], lung_voxels[k]) for k in lungs}
    report["severity_rule"] = SEVERITY_RULE
    return report


def format_summary(report: dict) -> str:
    """A few lines for the terminal."""
    lines = [f"lesion volume: {report['lesion_ml']:.1f} mL "
             f"({report['lesion_in_lung_ml']['total']:.1f} mL inside the lungs)",
             f"lungs ({report['lung_source']}):"]
    for side in (*SIDES, "total"):
        share = report["affected_percent"][side]
        share_text = "n/a" if share is None else f"{share:.1f} %"
        lines.append(
            f"  {side:>5}: lung {report['lung_ml'][side]:8.1f} mL, "
            f"lesion {report['lesion_in_lung_ml'][side]:7.1f} mL, affected {share_text}, "
            f"{report['severity'][side] or 'severity n/a'}"
        )
    lines.append("severity: MosMedData CT-0..CT-4 (CT-1 < 25 % <= CT-2 < 50 % <= CT-3 < 75 % "
                 "<= CT-4)")
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
