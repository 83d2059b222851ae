"""RICORD 1a (MIDRC) for ``tfcovseg prepare ricord``: DICOM series + MD.ai polygon annotations.

Expected layout (as TCIA publishes it)::

    SRC/MIDRC-RICORD-1a_annotations_labelgroup_all_2020-Dec-8.json    (or --annotations FILE)
    SRC/MIDRC-RICORD-1A/<PatientID>/<study>/<series>/*.dcm            (any depth works)

What the converter does, after Bressem et al.: each study becomes one case (id = PatientID, with
``_2``, ``_3`` ... for a patient's further studies, ordered by Study Instance UID). Of a
study's series, the annotated one is used (most annotation rows; untouched studies: the largest
series). SimpleITK reads it (slices sorted by position, Rescale Slope/Intercept applied), HU
are clipped to [-2000, 500]. Every annotation of an infiltrate label is rasterised onto the
slice whose SOP Instance UID it names; the lesion mask is the union over labels and annotators.

Counted and reported (warnings, and the manifest's ``annotations`` block): rows with ``data``
null (study-level labels, some instance rows) or without polygon vertices, rows whose SOP UID is
in no slice of the used series, and studies of the JSON without images. Rows drawn on another
image size than the slice's are left out with a warning.

Infiltrate labels: ``DEFAULT_INFILTRATE`` (the two "Infectious" opacity labels) unless ``labels``
names others (any of the export's label names, e.g. "Atelectasis"; each must be in the export).
An export whose label groups lack one of the defaults uses those it has: the missing ones are
logged and recorded in the manifest's ``notes`` and ``annotations.missing_default_labels``.
"""

import collections
import dataclasses
import json
import logging
import os
from pathlib import Path

import numpy as np
import pydicom

from tfcovseg.errors import DataError, TfcovsegError
from tfcovseg.io.converters import ConvertedCase, Source, SourceCase
from tfcovseg.io.dicom import read_dicom_series

log = logging.getLogger(__name__)

HU_CLIP = (-2000.0, 500.0)  # Bressem et al., RICORD preparation
DEFAULT_INFILTRATE = ("Infectious opacity", "Infectious TIB/micronodules")
RICORD_LABELS = (  # the six lesion labels of RICORD 1a's "all" label group
    "Infectious opacity", "Infectious TIB/micronodules", "Atelectasis",
    "Other noninfectious opacity", "Noninfectious nodule/mass", "Infectious cavity",
)
FIXED_SHIFT = 16  # OpenCV's fillPoly walks polygon edges in 16.16 fixed point
FIXED_ONE = 1 << FIXED_SHIFT
_HEADER_TAGS = ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


# --- MD.ai export ------------------------------------------------------------------------------

@dataclasses.dataclass
class MdaiExport:
    path: Path
    labels: dict  # label id -> name
    annotations: list  # annotation rows (dicts) of all datasets


def load_mdai(path) -> MdaiExport:
    """Read an MD.ai JSON export: ``labelGroups`` (labels) and ``datasets`` (annotations)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise TfcovsegError("annotation file not found", path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise TfcovsegError(f"not valid JSON ({err})", path) from None
    except OSError as err:
        raise TfcovsegError(f"cannot read the annotation file ({err.strerror})", path) from None
    groups = data.get("labelGroups") if isinstance(data, dict) else None
    datasets = data.get("datasets") if isinstance(data, dict) else None
    if not isinstance(groups, list) or not isinstance(datasets, list):
        raise TfcovsegError("not an MD.ai export: expected top-level 'labelGroups' and "
                            "'datasets' lists", path)
    labels = {label["id"]: label["name"] for group in groups for label in group.get("labels", [])
              if isinstance(label, dict) and "id" in label and "name" in label}
    annotations = [row for dataset in datasets if isinstance(dataset, dict)
                   for row in dataset.get("annotations", []) if isinstance(row, dict)]
    return MdaiExport(path, labels, annotations)


def label_ids(export: MdaiExport, names) -> set:
    """The ids of the labels called ``names`` (case-insensitive); unknown names are an error."""
    by_name = collections.defaultdict(set)
    for label_id, name in export.labels.items():
        by_name[name.lower()].add(label_id)
    unknown = [n for n in names if n.lower() not in by_name]
    if unknown:
        raise DataError(f"no label {', '.join(map(repr, unknown))} in this export; "
                        f"{_export_labels(export)}", export.path)
    return set().union(*(by_name[n.lower()] for n in names))


def default_labels(export: MdaiExport) -> tuple:
    """``(present, missing)`` names of ``DEFAULT_INFILTRATE`` in the export; none present is an
    error, missing ones are logged."""
    known = {name.lower() for name in export.labels.values()}
    present = tuple(n for n in DEFAULT_INFILTRATE if n.lower() in known)
    missing = tuple(n for n in DEFAULT_INFILTRATE if n.lower() not in known)
    if not present:
        raise DataError(f"none of the default infiltrate labels ({', '.join(DEFAULT_INFILTRATE)}) "
                        f"is in this export; choose some with --label NAME; "
                        f"{_export_labels(export)}", export.path)
    if missing:
        log.warning("%s: default infiltrate label(s) %s not in this export; the lesion mask uses "
                    "%s", export.path, ", ".join(missing), ", ".join(present))
    return present, missing


def polygon(row: dict):
    """The ``[[x, y], ...]`` vertices of an annotation row, or None (no data, not a polygon)."""
    data = row.get("data")
    vertices = data.get("vertices") if isinstance(data, dict) else None
    if not vertices:
        return None
    try:
        array = np.asarray(vertices, dtype=float)
    except (TypeError, ValueError):  # ragged or non-numeric: not a polygon
        return None
    if array.ndim != 2 or array.shape[1] != 2 or not np.isfinite(array).all():
        return None
    return array


def _export_labels(export: MdaiExport) -> str:
    return f"its labels: {', '.join(sorted(set(export.labels.values()))) or 'none'}"


# --- rasterisation -----------------------------------------------------------------------------

def rasterise_polygon(vertices, shape) -> np.ndarray:
    """Boolean ``shape`` (rows, columns) mask of a polygon given as ``[[x, y], ...]`` pixels.

    MD.ai's own rule, OpenCV ``fillPoly(mask, [vertices.astype(int32)], 1)``, rebuilt without
    OpenCV: vertices are truncated to integers (toward zero); every edge is drawn as an
    8-connected Bresenham line, so the boundary is included; each scanline between an edge's
    upper and lower row is filled even-odd between the edge crossings, which step in 16.16 fixed
    point with a truncated slope, from the left crossing rounded up to the right one rounded
    down. Edges leaving the image are clipped as OpenCV clips them. Pixel-identical to OpenCV
    5.0 on random polygons, self-intersecting and partly outside ones included (see the tests;
    OpenCV 4 releases before its edge-clipping fix can differ for polygons leaving the image).
    """
    rows, columns = shape
    points = np.asarray(vertices, dtype=float).astype(np.int32).tolist()
    mask = np.zeros(shape, bool)
    edges = []
    for start, end in zip(points[-1:] + points[:-1], points, strict=True):
        _draw_line(mask, start, end)
        edge = _edge(start, end, shape)
        if edge is not None:
            edges.append(edge)
    _fill_between_edges(mask, edges)
    return mask


def _edge(start, end, shape):
    """``(top row, bottom row, fixed-point x at the top row, fixed-point step per row)``."""
    (xa, ya), (xb, yb) = start, end
    if ya == yb:
        return None
    ca, cb = (xa, ya), (xb, yb)  # where the fixed-point x is anchored
    inside = all(0 <= x < shape[1] and 0 <= y < shape[0] for x, y in (start, end))
    if not inside:
        _, ca, cb = _clip_line(start, end, shape)
        if ca[1] == cb[1]:  # clipped flat: OpenCV keeps the rows and the clipped columns
            ca, cb = (ca[0], ya), (cb[0], yb)
    run, rise = (cb[0] - ca[0]) << FIXED_SHIFT, cb[1] - ca[1]
    step = abs(run) // abs(rise) * (1 if (run >= 0) == (rise > 0) else -1)  # C's truncation
    (top, anchor), bottom = ((ya, ca), yb) if ya < yb else ((yb, cb), ya)
    return top, bottom, (anchor[0] << FIXED_SHIFT) + (top - anchor[1]) * step, step


def _fill_between_edges(mask, edges) -> None:
    rows, columns = mask.shape
    if len(edges) < 2:
        return
    for y in range(max(min(e[0] for e in edges), 0), min(max(e[1] for e in edges), rows)):
        crossings = sorted(x + (y - top) * step for top, bottom, x, step in edges
                           if top <= y < bottom)
        for left, right in zip(crossings[0::2], crossings[1::2], strict=True):
            first, last = (left + FIXED_ONE - 1) >> FIXED_SHIFT, right >> FIXED_SHIFT
            if first < columns and last >= 0:
                mask[y, max(first, 0):min(last, columns - 1) + 1] = True


def _draw_line(mask, start, end) -> None:
    """OpenCV's 8-connected line (clipped to the image first, then drawn left to right)."""
    rows, columns = mask.shape
    if not all(0 <= x < columns and 0 <= y < rows for x, y in (start, end)):
        visible, start, end = _clip_line(start, end, mask.shape)
        if not visible:
            return
    (x0, y0), (x1, y1) = sorted([start, end], key=lambda p: p[0]) if start[0] != end[0] \
        else (start, end)
    major, minor, step_minor = x1 - x0, y1 - y0, 1
    if minor < 0:
        minor, step_minor = -minor, -1
    steep = minor > major
    if steep:
        major, minor = minor, major
    error = major - 2 * minor  # OpenCV's LineIterator error term
    offsets = np.zeros(major + 1, np.int64)
    for i in range(major):
        offsets[i + 1] = offsets[i] + (error < 0)
        error += -2 * minor + (2 * major if error < 0 else 0)
    along = np.arange(major + 1)
    if steep:
        mask[y0 + step_minor * along, x0 + offsets] = True
    else:
        mask[y0 + step_minor * offsets, x0 + along] = True


def _clip_line(start, end, shape):
    """OpenCV's ``clipLine``: ``(visible, start, end)`` with the ends moved onto the image."""
    right, bottom = shape[1] - 1, shape[0] - 1
    (x1, y1), (x2, y2) = start, end

    def outcode(x, y):
        return (x < 0) + (x > right) * 2 + (y < 0) * 4 + (y > bottom) * 8

    c1, c2 = outcode(x1, y1), outcode(x2, y2)
    if (c1 & c2) == 0 and (c1 | c2) != 0:
        if c1 & 12:
            a = 0 if c1 < 8 else bottom
            x1 += int((a - y1) * (x2 - x1) / (y2 - y1))
            y1, c1 = a, (x1 < 0) + (x1 > right) * 2
        if c2 & 12:
            a = 0 if c2 < 8 else bottom
            x2 += int((a - y2) * (x2 - x1) / (y2 - y1))
            y2, c2 = a, (x2 < 0) + (x2 > right) * 2
        if (c1 & c2) == 0 and (c1 | c2) != 0:
            if c1:
                a = 0 if c1 == 1 else right
                y1 += int((a - x1) * (y2 - y1) / (x2 - x1))
                x1, c1 = a, 0
            if c2:
                a = 0 if c2 == 1 else right
                y2 += int((a - x2) * (y2 - y1) / (x2 - x1))
                x2, c2 = a, 0
    return (c1 | c2) == 0, (x1, y1), (x2, y2)


# --- the converter -----------------------------------------------------------------------------

@dataclasses.dataclass
class _Series:
    uid: str
    study_uid: str
    patient_id: str
    folder: Path
    sop_uids: set


def find_ricord(src, annotations=None, labels=None) -> Source:
    """List RICORD studies in ``src`` as cases; match the MD.ai annotations to their series."""
    src = Path(src)
    export = load_mdai(annotations or _default_annotation_file(src))
    names, missing = (tuple(labels), ()) if labels else default_labels(export)
    wanted = label_ids(export, names)
    series = _scan_series(src)
    studies = collections.defaultdict(list)
    for item in series.values():
        studies[item.study_uid].append(item)

    counts = collections.Counter()
    rows_by_study = collections.defaultdict(list)
    for row in export.annotations:
        if polygon(row) is None:
            counts["without_polygon"] += 1
        elif row.get("labelId") not in wanted:
            counts["other_labels"] += 1
        elif row.get("StudyInstanceUID") not in studies:
            counts["study_not_found"] += 1
        else:
            rows_by_study[row["StudyInstanceUID"]].append(row)

    hits = collections.Counter(row.get("SeriesInstanceUID") for row in export.annotations)
    cases = []
    for study_uid, case_id in _case_ids(studies).items():
        chosen = max(studies[study_uid], key=lambda s: (hits[s.uid], len(s.sop_uids), s.uid))
        rows = [r for r in rows_by_study[study_uid] if r.get("SOPInstanceUID") in chosen.sop_uids]
        counts["matched"] += len(rows)
        counts["sop_not_found"] += len(rows_by_study[study_uid]) - len(rows)
        cases.append(SourceCase(case_id, _loader(chosen, rows)))
    if not cases:
        raise TfcovsegError("no DICOM series found under this folder", src)
    _warn_about(counts, export.path)
    notes = (f"RICORD 1a: HU clipped to {list(HU_CLIP)}; lesion = union of {', '.join(names)} "
             "over annotators.")
    if missing:
        notes += f" Default label(s) missing from the export: {', '.join(missing)}."
    return Source(cases, notes=notes,
                  extra={"annotations": {"file": str(export.path), "labels": list(names),
                                         "missing_default_labels": list(missing),
                                         **{k: counts[k] for k in _COUNTED}}})


_COUNTED = ("matched", "sop_not_found", "study_not_found", "without_polygon", "other_labels")


def _warn_about(counts, path) -> None:
    if counts["sop_not_found"] or counts["study_not_found"]:
        log.warning("%s: %d annotations name a SOP UID in no slice of their study's used series, "
                    "%d a study with no images here", path, counts["sop_not_found"],
                    counts["study_not_found"])
    if counts["without_polygon"]:
        log.warning("%s: %d annotation rows have no polygon (data null: study-level labels)",
                    path, counts["without_polygon"])


def _loader(series: _Series, rows: list):
    def load() -> ConvertedCase:
        dicom = read_dicom_series(series.folder, series.uid)
        mask = np.zeros(dicom.array.shape, np.uint8)
        slice_of = {uid: k for k, uid in enumerate(dicom.sop_uids)}
        size_mismatch = 0
        for row in rows:
            k = slice_of.get(row["SOPInstanceUID"])
            if k is None:  # the file was unreadable: dicom.flags says so
                continue
            if (row.get("height"), row.get("width")) not in ((None, None), mask.shape[1:]):
                size_mismatch += 1
                continue
            mask[k] |= rasterise_polygon(polygon(row), mask.shape[1:])
        if size_mismatch:
            log.warning("%s: %d annotations were drawn on another image size than %s: not used",
                        series.folder, size_mismatch, mask.shape[1:])
        image = dicom.volume(np.clip(dicom.array, *HU_CLIP))
        return ConvertedCase(
            image=image, label=dicom.volume(mask).array, flags=list(dicom.flags),
            notes="" if rows else "no infiltrate annotations: empty label",
            extra={"patient": series.patient_id or "anonymous", "study_uid": series.study_uid,
                   "series_uid": series.uid, "annotations": len(rows) - size_mismatch})

    return load


def _default_annotation_file(src: Path) -> Path:
    found = sorted(src.glob("*.json"))
    if len(found) != 1:
        raise TfcovsegError(f"expected one MD.ai *.json here, found {len(found)}; "
                            "give it with --annotations", src)
    return found[0]


def _scan_series(src: Path) -> dict:
    """``{series UID: _Series}`` of every DICOM file under ``src`` (headers only)."""
    series = {}
    for folder, _, names in os.walk(src):
        for name in sorted(names):
            header = _header(Path(folder) / name)
            if header is None:
                continue
            item = series.setdefault(header["SeriesInstanceUID"], _Series(
                header["SeriesInstanceUID"], header["StudyInstanceUID"], header["PatientID"],
                Path(folder), set()))
            item.sop_uids.add(header["SOPInstanceUID"])
    return series


def _header(path: Path):
    if path.suffix.lower() == ".json":
        return None
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(_HEADER_TAGS))
    except (pydicom.errors.InvalidDicomError, OSError, EOFError, ValueError):
        return None  # not DICOM (or unreadable: read_dicom_series flags it)
    values = {tag: str(ds.get(tag, "")).strip() for tag in _HEADER_TAGS}
    return values if values["SeriesInstanceUID"] and values["SOPInstanceUID"] else None


def _case_ids(studies: dict) -> dict:
    """``{study UID: case id}``: the PatientID, numbered from the second study of a patient."""
    by_patient = collections.defaultdict(list)
    for study_uid, items in studies.items():
        by_patient[items[0].patient_id or "anonymous"].append(study_uid)
    ids = {}
    for patient, uids in sorted(by_patient.items()):
        for n, uid in enumerate(sorted(uids), start=1):
            ids[uid] = patient if n == 1 else f"{patient}_{n}"
    return ids
