import json
import logging

import numpy as np
import pytest

from tfcovseg.errors import DataError, TfcovsegError
from tfcovseg.io.converters import prepare
from tfcovseg.io.dicom import write_dicom_series
from tfcovseg.io.manifest import load_dataset
from tfcovseg.io.nifti import ras_affine, read_volume
from tfcovseg.io.phantoms import phantom
from tfcovseg.io.ricord import (
    DEFAULT_INFILTRATE,
    RICORD_LABELS,
    load_mdai,
    polygon,
    rasterise_polygon,
)

SHAPE = (4, 40, 48)  # slices, rows, columns
SPACING = (2.0, 0.75, 0.75)
LABEL_IDS = {name: f"L_{i}" for i, name in enumerate(RICORD_LABELS)}
TRIANGLE = [[5.7, 4.2], [30.9, 9.5], [12.2, 30.8]]
SQUARE = [[20, 20], [40, 20], [40, 35], [20, 35]]


def test_polygon_fill_includes_the_boundary_and_truncates_vertices():
    mask = rasterise_polygon([[1.9, 1.2], [4.99, 1.0], [4.5, 3.7], [1.0, 3.0]], (6, 7))
    expected = np.zeros((6, 7), bool)
    expected[1:4, 1:5] = True  # rows 1..3, columns 1..4: boundary pixels included
    assert np.array_equal(mask, expected)


def test_polygon_fill_of_a_triangle_stays_within_its_truncated_hull():
    mask = rasterise_polygon(TRIANGLE, (40, 48))
    rows, cols = np.nonzero(mask)
    assert rows.min() == 4 and rows.max() == 30 and cols.min() == 5 and cols.max() == 30
    assert mask[12, 15] and not mask[25, 25]
    area = 0.5 * abs(25 * 26 - 5 * 7)  # edge vectors (25, 5) and (7, 26) of the truncated triangle
    assert abs(mask.sum() - area) < 0.25 * area


@pytest.mark.reference
def test_polygon_fill_equals_opencv_fillpoly():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    for i in range(300):
        count = rng.integers(3, 30)
        angles = rng.uniform(0, 2 * np.pi, count)
        if i % 2:
            angles.sort()  # simple polygons; the others self-intersect
        radii = rng.uniform(1, 40) * rng.uniform(0.3, 1, count)
        centre = rng.uniform(-10, 60, 2)  # some reach outside the image
        vertices = np.stack([centre[0] + radii * np.cos(angles),
                             centre[1] + radii * np.sin(angles)], 1)
        expected = np.zeros((40, 56), np.uint8)
        cv2.fillPoly(expected, [vertices.astype(np.int32)], 1)
        assert np.array_equal(rasterise_polygon(vertices, (40, 56)), expected.astype(bool)), i


def _row(sop, series, study, label, vertices, data=True):
    return {"StudyInstanceUID": study, "SeriesInstanceUID": series, "SOPInstanceUID": sop,
            "labelId": LABEL_IDS[label], "height": SHAPE[1], "width": SHAPE[2],
            "data": {"vertices": vertices} if data else None}


@pytest.fixture(scope="module")
def ricord(tmp_path_factory):
    """A RICORD-like tree: patient A has one study with an annotated and a plain series."""
    src = tmp_path_factory.mktemp("ricord")
    image, _, _ = phantom(np.random.default_rng(1), SHAPE)
    affine = ras_affine(SHAPE, SPACING)
    tree = src / "MIDRC-RICORD-1A"
    annotated = write_dicom_series(tree / "A" / "study1" / "s2", np.rint(image), affine,
                                   rescale=(0.5, -1500.0), study_uid="1.1", series_uid="1.1.2",
                                   patient_id="A")
    write_dicom_series(tree / "A" / "study1" / "s1", np.rint(image[:2]), affine,
                       study_uid="1.1", series_uid="1.1.1", patient_id="A")
    plain = write_dicom_series(tree / "B" / "study1" / "s1", np.rint(image), affine,
                               study_uid="2.1", series_uid="2.1.1", patient_id="B")
    rows = [
        _row(annotated[1], "1.1.2", "1.1", "Infectious opacity", TRIANGLE),
        _row(annotated[1], "1.1.2", "1.1", "Infectious TIB/micronodules", SQUARE),  # 2nd reader
        _row(annotated[2], "1.1.2", "1.1", "Atelectasis", SQUARE),
        _row(None, None, "1.1", "Infectious opacity", None, data=False),  # study-level label
        _row("9.9.9", "1.1.2", "1.1", "Infectious opacity", SQUARE),  # no such slice
        _row("8.8.8", "3.1.1", "3.1", "Infectious opacity", SQUARE),  # no such study
        _row(plain[0], "2.1.1", "2.1", "Noninfectious nodule/mass", SQUARE),
    ]
    export = {"labelGroups": [{"labels": [
        {"id": i, "name": n, "annotationMode": "freeform", "scope": "INSTANCE"}
        for n, i in LABEL_IDS.items()]}],
        "datasets": [{"studies": [], "annotations": rows}]}
    (src / "MIDRC-RICORD-1a_annotations_labelgroup_all_2020-Dec-8.json").write_text(
        json.dumps(export))
    return src, np.rint(image)


@pytest.fixture(scope="module")
def prepared(ricord, tmp_path_factory):
    src, _ = ricord
    return prepare("ricord", src, tmp_path_factory.mktemp("out"))


def test_ricord_case_per_study_using_the_annotated_series(prepared):
    dataset = load_dataset(prepared.root)
    assert [c.id for c in dataset.cases] == ["A", "B"]
    assert dataset.case("A").extra["series_uid"] == "1.1.2"
    assert dataset.case("A").extra["patient"] == "A"  # evaluate averages per patient
    assert dataset.case("A").shape == list(SHAPE)
    assert dataset.case("B").notes == "no infiltrate annotations: empty label"


def test_ricord_hu_are_rescaled_and_clipped(prepared, ricord):
    _, image = ricord
    volume = read_volume(prepared.path(prepared.case("A").image))
    np.testing.assert_allclose(volume.array, np.clip(image, -2000, 500), atol=1.0)
    np.testing.assert_allclose(volume.spacing, SPACING, atol=1e-4)


def test_ricord_mask_lands_on_matching_sop_uid_as_union_of_readers(prepared):
    label = read_volume(prepared.path(prepared.case("A").label)).array
    assert label[[0, 2, 3]].sum() == 0  # atelectasis on slice 2 is not infiltrate
    stored_view = label[1][::-1, ::-1]  # the test's DICOM rows/columns (LPS storage)
    expected = rasterise_polygon(TRIANGLE, SHAPE[1:]) | rasterise_polygon(SQUARE, SHAPE[1:])
    assert np.array_equal(stored_view, expected)


def test_ricord_counts_what_it_could_not_use(prepared):
    counts = prepared.extra["annotations"]
    assert counts["matched"] == 2
    assert counts["sop_not_found"] == 1
    assert counts["study_not_found"] == 1
    assert counts["without_polygon"] == 1
    assert counts["other_labels"] == 2
    assert counts["labels"] == ["Infectious opacity", "Infectious TIB/micronodules"]


def test_ricord_label_option_chooses_the_lesion_labels(ricord, tmp_path):
    src, _ = ricord
    dataset = prepare("ricord", src, tmp_path, labels=["atelectasis"])
    label = read_volume(dataset.path(dataset.case("A").label)).array
    assert label[2].sum() == rasterise_polygon(SQUARE, SHAPE[1:]).sum() and label[1].sum() == 0


def test_unknown_label_name_lists_the_export_labels(ricord, tmp_path):
    src, _ = ricord
    with pytest.raises(TfcovsegError, match="no label 'Fibrosis'.*Atelectasis"):
        prepare("ricord", src, tmp_path, labels=["Fibrosis"])


def test_json_that_is_not_an_mdai_export_is_a_clear_error(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"images": []}))
    with pytest.raises(TfcovsegError, match="not an MD.ai export") as err:
        load_mdai(path)
    assert str(path) in str(err.value)
    path.write_text("{broken")
    with pytest.raises(TfcovsegError, match="not valid JSON"):
        load_mdai(path)
    with pytest.raises(TfcovsegError, match="cannot read"):
        load_mdai(tmp_path)


def test_rows_without_a_usable_polygon_are_recognised():
    assert polygon({"data": None}) is None
    assert polygon({"data": {"x": 1, "y": 2, "width": 3, "height": 4}}) is None  # a box
    assert polygon({"data": {"vertices": [[1, 2], [3]]}}) is None  # ragged
    assert polygon({"data": {"vertices": [[1, 2], [3, 4.5]]}}).shape == (2, 2)


def _export_without(src, folder, *absent):
    """The fixture's MD.ai export with the labels ``absent`` left out of its label groups."""
    export = json.loads(next(src.glob("*.json")).read_text())
    for group in export["labelGroups"]:
        group["labels"] = [label for label in group["labels"] if label["name"] not in absent]
    path = folder / "export.json"
    path.write_text(json.dumps(export))
    return path


def test_default_labels_missing_from_the_export_are_logged_noted_and_the_rest_used(
        ricord, tmp_path, caplog):
    src, _ = ricord
    annotations = _export_without(src, tmp_path, "Infectious TIB/micronodules")
    with caplog.at_level(logging.WARNING, logger="tfcovseg.io.ricord"):
        prepare("ricord", src, tmp_path / "out", annotations=annotations)
    assert "default infiltrate label(s) Infectious TIB/micronodules not in this export" in caplog.text
    dataset = load_dataset(tmp_path / "out")
    assert dataset.extra["annotations"]["labels"] == ["Infectious opacity"]
    assert dataset.extra["annotations"]["missing_default_labels"] == ["Infectious TIB/micronodules"]
    assert "missing from the export: Infectious TIB/micronodules" in dataset.extra["notes"]
    label = read_volume(dataset.path(dataset.case("A").label)).array
    assert np.array_equal(label[1][::-1, ::-1], rasterise_polygon(TRIANGLE, SHAPE[1:]))


def test_an_export_without_any_default_label_is_refused_listing_its_labels(ricord, tmp_path):
    src, _ = ricord
    annotations = _export_without(src, tmp_path, *DEFAULT_INFILTRATE)
    with pytest.raises(DataError, match="none of the default infiltrate labels .* is in this "
                       "export; choose some with --label NAME; its labels: Atelectasis, ") as err:
        prepare("ricord", src, tmp_path / "out", annotations=annotations)
    assert err.value.path == str(annotations)
    assert not (tmp_path / "out").exists()
