import json

import numpy as np
import pytest

from tfcovseg.errors import DataError, TfcovsegError
from tfcovseg.io.manifest import Case, Dataset, case_files, load_dataset, write_dataset
from tfcovseg.io.nifti import write_volume


def _write_case(root, case_id, lung=False):
    files = case_files(case_id)
    for key in ("image", "label") + (("lung",) if lung else ()):
        write_volume(root / files[key], np.zeros((2, 4, 4), np.float32), np.eye(4))
    return files


def test_hand_written_minimal_manifest_loads(tmp_path):
    files = _write_case(tmp_path, "a", lung=True)
    (tmp_path / "dataset.json").write_text(json.dumps({"name": "mine", "cases": [{"id": "a", **files}]}))
    ds = load_dataset(tmp_path)
    assert ds.name == "mine" and ds.source == "user"
    assert ds.cases[0].lung == "lungs/a.nii.gz"
    assert ds.path(ds.cases[0].image).is_file()
    assert [c.id for c in ds.labelled] == ["a"]


def test_write_then_load_keeps_fields_and_extras(tmp_path):
    files = _write_case(tmp_path, "b")
    case = Case(id="b", image=files["image"], label=files["label"], spacing=[5.0, 1.0, 1.0],
                flags=["windowed"], extra={"study_uid": "1.2.3"})
    write_dataset(Dataset(root=tmp_path, name="x", cases=[case], source="ricord", extra={"split": "all"}))
    ds = load_dataset(tmp_path)
    assert ds.cases[0].flags == ["windowed"] and ds.cases[0].extra == {"study_uid": "1.2.3"}
    assert ds.source == "ricord" and ds.extra == {"split": "all"}


def test_manifest_problems_name_the_file_and_the_problem(tmp_path):
    with pytest.raises(TfcovsegError, match="not a prepared dataset"):
        load_dataset(tmp_path)
    (tmp_path / "dataset.json").write_text("{broken")
    with pytest.raises(TfcovsegError, match="not valid JSON"):
        load_dataset(tmp_path)
    (tmp_path / "dataset.json").write_text(json.dumps({"name": "x", "cases": [{"id": "a", "image": "images/a.nii.gz"}]}))
    with pytest.raises(TfcovsegError, match="image file images/a.nii.gz is missing"):
        load_dataset(tmp_path)
    files = _write_case(tmp_path, "a", lung=True)
    (tmp_path / "dataset.json").write_text(json.dumps({"name": "x", "cases": [{"id": "a", **files}] * 2}))
    with pytest.raises(TfcovsegError, match="appears twice"):
        load_dataset(tmp_path)


@pytest.mark.parametrize("field, declared", [
    pytest.param("labels", ["background", "lesion"], id="labels-as-a-list"),
    pytest.param("lung_labels", {"right": "right lung"}, id="lung-value-not-a-number"),
])
def test_label_declarations_must_map_values_to_names(tmp_path, field, declared):
    files = _write_case(tmp_path, "a", lung=True)
    (tmp_path / "dataset.json").write_text(json.dumps(
        {"name": "x", field: declared, "cases": [{"id": "a", **files}]}))
    with pytest.raises(DataError, match=f'"{field}" must map label values to names') as err:
        load_dataset(tmp_path)
    assert err.value.path == str(tmp_path / "dataset.json")


def test_declared_values_of_label_and_lung_files_include_background(tmp_path):
    files = _write_case(tmp_path, "a", lung=True)
    (tmp_path / "dataset.json").write_text(json.dumps(
        {"name": "x", "lung_labels": {"1": "lung"}, "cases": [{"id": "a", **files}]}))
    dataset = load_dataset(tmp_path)
    assert dataset.mask_labels("label") == {0: "background", 1: "lesion"}
    assert dataset.mask_labels("lung") == {0: "background", 1: "lung"}


def test_a_file_entry_that_is_not_a_path_is_refused(tmp_path):
    (tmp_path / "dataset.json").write_text(json.dumps(
        {"name": "x", "cases": [{"id": "a", "image": 3}]}))
    with pytest.raises(DataError, match="case 'a': image must be a path relative to the dataset "
                       "folder, got 3"):
        load_dataset(tmp_path)
