"""The volume report: volumes per lung, lesion inside the lungs, and MosMed's CT-0..CT-4 rule."""

import json

import numpy as np
import pytest

from tfcovseg.infer.report import SEVERITY_RULE, ct_severity, format_summary, volume_report


@pytest.mark.parametrize(("lesion", "lung", "category"), [
    pytest.param(0, 10_000, "CT-0", id="none"),
    pytest.param(1, 10_000, "CT-1", id="one-voxel"),
    pytest.param(2_499, 10_000, "CT-1", id="just-under-25"),
    pytest.param(2_500, 10_000, "CT-2", id="at-25"),
    pytest.param(1, 4, "CT-2", id="at-25-of-a-small-lung"),
    pytest.param(4_999, 10_000, "CT-2", id="just-under-50"),
    pytest.param(5_000, 10_000, "CT-3", id="at-50"),
    pytest.param(7_499, 10_000, "CT-3", id="just-under-75"),
    pytest.param(7_500, 10_000, "CT-4", id="at-75"),
    pytest.param(10_000, 10_000, "CT-4", id="all"),
    pytest.param(0, 0, None, id="no-lung"),
])
def test_severity_category_at_the_boundaries(lesion, lung, category):
    assert ct_severity(lesion, lung) == category


def _lungs(shape=(10, 10, 20)):
    right = np.zeros(shape, bool)
    right[..., :10] = True
    return {"right": right, "left": ~right}


def test_report_gives_severity_per_lung_and_for_both_lungs():
    sides = _lungs()  # 1000 voxels per lung
    lesion = np.zeros((10, 10, 20), bool)
    lesion.reshape(-1, 20)[:30, :10] = True  # 300 of the right lung: 30 %
    lesion.reshape(-1, 20)[:25, 10:] = True  # 250 of the left lung: exactly 25 %
    report = volume_report(lesion, (2.0, 1.0, 0.5), sides)
    assert report["severity"] == {"right": "CT-2", "left": "CT-2", "total": "CT-2"}
    assert report["affected_percent"]["right"] == pytest.approx(30.0)
    assert report["affected_percent"]["total"] == pytest.approx(27.5)
    assert report["severity_rule"] == SEVERITY_RULE and "exactly 25 % is CT-2" in SEVERITY_RULE
    json.dumps(report)  # the report is written as JSON


def test_lesion_outside_the_lungs_counts_in_no_lung():
    sides = _lungs()
    sides["left"][:] = False  # a left lung of nothing: severity n/a there
    sides["right"][5:] = False  # the right lung is the lower half: 500 voxels
    lesion = np.zeros((10, 10, 20), bool)
    lesion[5:] = True  # all of it outside the lungs
    report = volume_report(lesion, (1.0, 1.0, 1.0), sides)
    assert report["lesion_in_lung_ml"]["total"] == 0.0
    assert report["lesion_outside_lungs_ml"] == pytest.approx(report["lesion_ml"])
    assert report["severity"] == {"right": "CT-0", "left": None, "total": "CT-0"}
    assert report["affected_percent"]["left"] is None


def test_summary_prints_the_lesion_inside_the_lungs_and_the_categories():
    report = volume_report(np.ones((10, 10, 20), bool), (1.0, 1.0, 1.0), _lungs())
    report["lung_source"] = "given"
    text = format_summary(report)
    assert "(2.0 mL inside the lungs)" in text
    assert "affected 100.0 %, CT-4" in text and "CT-1 < 25 % <= CT-2" in text
