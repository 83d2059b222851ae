"""The prepared dataset: one folder, NIfTI files and a ``dataset.json`` manifest.

Minimal manifest a user can write by hand (paths relative to the folder)::

    {"name": "mine", "cases": [{"id": "a", "image": "images/a.nii.gz",
                                "label": "labels/a.nii.gz", "lung": "lungs/a.nii.gz"}]}

Converters add ``source``, ``labels`` and ``lung_labels`` (the values a label or lung file
may hold, with their names; default ``DEFAULT_LABELS`` and ``DEFAULT_LUNG_LABELS``, 0 is
always background), and per case ``spacing`` (D, H, W mm), ``shape`` (D, H, W),
``orientation`` (axis codes of the source file), ``flags`` (machine-readable warnings such as
``"windowed"``) and ``notes``.
"""

import dataclasses
import json
from pathlib import Path

from tfcovseg.errors import DataError, TfcovsegError
from tfcovseg.files import write_json

MANIFEST = "dataset.json"
DEFAULT_LABELS = {"0": "background", "1": "lesion"}
DEFAULT_LUNG_LABELS = {"1": "right lung", "2": "left lung"}  # or 1 = lung (tfcovseg.io.cohorts)
BACKGROUND = 0
MASK_LABEL_FIELDS = {"label": "labels", "lung": "lung_labels"}  # mask file -> its declaration


@dataclasses.dataclass
class Case:
    id: str
    image: str
    label: str | None = None
    lung: str | None = None
    spacing: list | None = None
    shape: list | None = None
    orientation: str | None = None
    flags: list = dataclasses.field(default_factory=list)
    notes: str = ""
    extra: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Dataset:
    root: Path
    name: str
    cases: list
    source: str = "user"
    labels: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_LABELS))
    extra: dict = dataclasses.field(default_factory=dict)

    def path(self, relative: str) -> Path:
        return self.root / relative

    def case(self, case_id: str) -> Case:
        for case in self.cases:
            if case.id == case_id:
                return case
        raise TfcovsegError(f"no case {case_id!r} in the manifest", self.root / MANIFEST)

    @property
    def labelled(self) -> list:
        return [c for c in self.cases if c.label]

    def mask_labels(self, key: str) -> dict:
        """``{value: name}`` a case's ``key`` file ("label" or "lung") may hold, background too."""
        if key == "label":
            declared = self.labels
        else:
            declared = self.extra.get("lung_labels", DEFAULT_LUNG_LABELS)
        return {BACKGROUND: "background", **{int(value): name for value, name in declared.items()}}


_CASE_FIELDS = {f.name for f in dataclasses.fields(Case)} - {"extra"}
_DATASET_FIELDS = {"name", "cases", "source", "labels"}


def load_dataset(root) -> Dataset:
    """Read and check ``root/dataset.json``: required keys, unique ids, files present."""
    root = Path(root)
    manifest = root / MANIFEST
    if not root.is_dir():
        raise TfcovsegError("dataset folder not found", root)
    if not manifest.is_file():
        raise TfcovsegError(f"no {MANIFEST} here: not a prepared dataset (see README)", root)
    try:
        data = json.loads(manifest.read_text())
    except json.JSONDecodeError as err:
        raise TfcovsegError(f"not valid JSON ({err})", manifest) from None
    if not isinstance(data, dict) or "name" not in data or not isinstance(data.get("cases"), list):
        raise TfcovsegError('needs at least {"name": ..., "cases": [...]}', manifest)
    cases, seen = [], set()
    for i, entry in enumerate(data["cases"]):
        if not isinstance(entry, dict) or "id" not in entry or "image" not in entry:
            raise TfcovsegError(f"case #{i} needs an 'id' and an 'image'", manifest)
        case_id = str(entry["id"])
        if case_id in seen:
            raise TfcovsegError(f"case id {case_id!r} appears twice", manifest)
        seen.add(case_id)
        known = {k: v for k, v in entry.items() if k in _CASE_FIELDS}
        known["id"] = case_id
        extra = {k: v for k, v in entry.items() if k not in _CASE_FIELDS}
        case = Case(**known, extra=extra)
        if not (isinstance(case.flags, list) and all(isinstance(f, str) for f in case.flags)):
            raise DataError(f"case {case_id!r}: flags must be a list of words such as "
                            f'["windowed"], got {json.dumps(case.flags)}', manifest)
        for key in ("image", "label", "lung"):
            rel = getattr(case, key)
            if rel is not None and not isinstance(rel, str):
                raise DataError(f"case {case_id!r}: {key} must be a path relative to the "
                                f"dataset folder, got {json.dumps(rel)}", manifest)
            if rel and not (root / rel).is_file():
                raise TfcovsegError(f"case {case_id!r}: {key} file {rel} is missing", manifest)
        cases.append(case)
    for field in MASK_LABEL_FIELDS.values():
        if field in data:
            _check_label_declaration(data[field], field, manifest)
    extra = {k: v for k, v in data.items() if k not in _DATASET_FIELDS}
    return Dataset(
        root=root,
        name=str(data["name"]),
        cases=cases,
        source=str(data.get("source", "user")),
        labels=dict(data.get("labels", DEFAULT_LABELS)),
        extra=extra,
    )


def write_dataset(dataset: Dataset) -> Path:
    """Write ``dataset.json`` atomically; returns its path."""
    cases = []
    for case in dataset.cases:
        entry = {k: v for k, v in dataclasses.asdict(case).items() if k != "extra"}
        entry = {k: v for k, v in entry.items() if v not in (None, [], "")}
        entry.update(case.extra)
        cases.append(entry)
    data = {"name": dataset.name, "source": dataset.source, "labels": dataset.labels}
    data.update(dataset.extra)
    data["cases"] = cases
    path = Path(dataset.root) / MANIFEST
    write_json(path, data)
    return path


def case_files(case_id: str) -> dict:
    """The conventional relative paths of a case's files."""
    return {
        "image": f"images/{case_id}.nii.gz",
        "label": f"labels/{case_id}.nii.gz",
        "lung": f"lungs/{case_id}.nii.gz",
    }


def _check_label_declaration(declared, field: str, manifest: Path) -> None:
    """``labels`` / ``lung_labels`` map whole-number values (as strings) to names."""
    if not isinstance(declared, dict) or not all(
            isinstance(value, str) and value.isdigit() for value in declared):
        raise DataError(f'"{field}" must map label values to names, e.g. '
                        f'{json.dumps(DEFAULT_LABELS)}; got {json.dumps(declared)}', manifest)
