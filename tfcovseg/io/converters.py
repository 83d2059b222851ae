"""``tfcovseg prepare``: convert a public COVID-19 CT dataset into a prepared dataset.

Each source module lists the cases it finds as ``SourceCase``s (an id and a loader); this module
loads them one by one, writes their NIfTI files and the manifest. A case whose loader raises
``TfcovsegError`` is reported (a warning, and the manifest's ``skipped`` list with the reason)
and the others go on. Sources, their expected layouts and quirks: ``tfcovseg.io.ricord``
(``ricord``) and ``tfcovseg.io.cohorts`` (``mosmed``, ``coronacases``, ``medseg``,
``radiopaedia``, ``folder``).
"""

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tfcovseg.errors import TfcovsegError
from tfcovseg.io.manifest import Case, Dataset, case_files, write_dataset
from tfcovseg.io.nifti import Volume, write_volume
from tfcovseg.settings.data import SOURCES

log = logging.getLogger(__name__)

INT16 = np.iinfo(np.int16)


@dataclasses.dataclass
class ConvertedCase:
    """A case ready to write: the image and its masks on the image's RAS+ grid."""

    image: Volume  # HU
    label: np.ndarray | None = None  # [D, H, W] lesion 0/1
    lung: np.ndarray | None = None  # [D, H, W] 1 = right, 2 = left lung (or 1 = lung)
    flags: list = dataclasses.field(default_factory=list)
    notes: str = ""
    extra: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class SourceCase:
    id: str
    load: Callable[[], ConvertedCase]


@dataclasses.dataclass
class Source:
    """What a source module found: its cases and what the manifest says about them."""

    cases: list  # of SourceCase
    lung_labels: dict | None = None  # e.g. {"1": "right lung", "2": "left lung"}
    notes: str = ""  # the source's quirks, for the manifest
    extra: dict = dataclasses.field(default_factory=dict)


def prepare(source: str, src, out, annotations=None, labels=None, window=None,
            masks=None) -> Dataset:
    """Convert ``src`` (a ``source`` dataset as published) into a prepared dataset in ``out``.

    ``annotations``, ``labels``: ricord's MD.ai export and infiltrate labels; ``window`` (low,
    high HU) and ``masks`` (the mask folder): slices, the HU window its 8-bit images were cut
    from.
    """
    src = Path(src)
    if not src.exists():
        raise TfcovsegError("source folder not found", src)
    if source not in SOURCES:
        raise TfcovsegError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    _refuse_options_of_other_sources(source, annotations=annotations, label=labels,
                                     window=window, masks=masks)
    if source == "ricord":
        from tfcovseg.io.ricord import find_ricord

        found = find_ricord(src, annotations=annotations, labels=labels)
    elif source == "slices":
        from tfcovseg.io.slices import find_slices

        found = find_slices(src, window, masks or "lesions")
    else:
        from tfcovseg.io.cohorts import FINDERS

        found = FINDERS[source](src)
    return write_prepared(found, src, out, name=source, source=source)


OPTION_SOURCES = {"annotations": "ricord", "label": "ricord", "window": "slices", "masks": "slices"}


def _refuse_options_of_other_sources(source: str, **options) -> None:
    given = [name for name, value in options.items() if value and OPTION_SOURCES[name] != source]
    if given:
        names = ", ".join(f"--{name} ({OPTION_SOURCES[name]})" for name in given)
        raise TfcovsegError(f"{names}: not an option of {source}")


def write_prepared(found: Source, src, out, name: str, source: str) -> Dataset:
    """Load, write and list every case of ``found``; print a one-line summary."""
    root = Path(out)
    entries, skipped = [], []
    for item in found.cases:
        try:
            case = item.load()
        except TfcovsegError as err:
            log.warning("skipped case %s: %s", item.id, err)
            skipped.append({"id": item.id, "reason": str(err)})
            continue
        entries.append(write_case(root, item.id, case))
    if not entries:
        raise TfcovsegError(f"no {source} case could be converted ({len(found.cases)} found, "
                            f"{len(skipped)} skipped; see the warnings above)", src)
    extra = {"source_folder": str(src), **found.extra, "skipped": skipped}
    if found.lung_labels:
        extra["lung_labels"] = found.lung_labels
    if found.notes:
        extra["notes"] = found.notes
    dataset = Dataset(root=root, name=name, cases=entries, source=source, extra=extra)
    write_dataset(dataset)
    flagged = sum(1 for case in entries if case.flags)
    print(f"{source}: wrote {len(entries)} cases to {root} ({len(skipped)} skipped, "
          f"{flagged} flagged)")
    return dataset


def write_case(root: Path, case_id: str, case: ConvertedCase) -> Case:
    """Write a case's NIfTI files (image int16 when its HU are whole numbers) and its entry."""
    files = case_files(case_id)
    image = case.image
    whole = np.array_equal(image.array, np.rint(image.array))
    fits = whole and INT16.min <= image.array.min() and image.array.max() <= INT16.max
    write_volume(root / files["image"], image.array, image.affine,
                 np.int16 if fits else np.float32)
    entry = Case(id=case_id, image=files["image"], spacing=[round(s, 6) for s in image.spacing],
                 shape=list(image.array.shape), orientation=image.orientation,
                 flags=list(dict.fromkeys(case.flags)), notes=case.notes, extra=case.extra)
    for key, mask in (("label", case.label), ("lung", case.lung)):
        if mask is not None:
            write_volume(root / files[key], mask, image.affine, np.uint8)
            setattr(entry, key, files[key])
    return entry
