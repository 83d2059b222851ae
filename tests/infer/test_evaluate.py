import csv
import json
import math
import shutil

import nibabel as nib
import numpy as np
import pytest
from standins import sphere_ct, write_predictions

from tfcovseg.errors import ConfigError, DataError, TfcovsegError
from tfcovseg.infer.evaluate import evaluate, summarise
from tfcovseg.io.manifest import Case, Dataset, case_files, load_dataset, write_dataset
from tfcovseg.io.nifti import save_image, write_volume
from tfcovseg.metrics import dice, surface_dice


def read_rows(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_labels_as_predictions_score_one_and_empty_cases_are_excluded(phantom_dataset, tmp_path):
    predictions = write_predictions(phantom_dataset, tmp_path / "pred")
    summary = evaluate(data=phantom_dataset.root, predictions=predictions, out=tmp_path / "out")
    by_metric = {row["metric"]: row for row in summary}
    assert by_metric["dice"]["n"] == 3 and by_metric["dice"]["excluded"] == 1  # case 3: no lesion
    assert by_metric["dice"]["mean"] == 1.0 and by_metric["nsd"]["lowest"] == 1.0
    rows = read_rows(tmp_path / "out" / "cases.csv")
    assert [r["id"] for r in rows] == [c.id for c in phantom_dataset.labelled]
    assert rows[3]["dice"] == "nan" and "both empty" in rows[3]["note"]
    assert "| Dice | 3 | 1.000 ± 0.000 |" in (tmp_path / "out" / "summary.md").read_text()
    assert read_rows(tmp_path / "out" / "summary.csv")[1]["metric"] == "nsd"


@pytest.mark.parametrize("axis, expect_full_nsd", [(2, False), (0, True)])
def test_nsd_uses_the_header_spacing_per_axis(phantom_dataset, tmp_path, axis, expect_full_nsd):
    # files are [x, y, z] with zooms (2.5, 2.5, 5): a one-voxel shift is 2.5 mm in x (within
    # 3 mm) but 5 mm in z
    predictions = write_predictions(phantom_dataset, tmp_path / "pred",
                                    lambda a: np.roll(a, 1, axis=axis))
    summary = evaluate(data=phantom_dataset.root, predictions=predictions, out=tmp_path / "out")
    nsd = {row["metric"]: row for row in summary}["nsd"]
    assert (nsd["lowest"] == pytest.approx(1.0)) == expect_full_nsd
    case = phantom_dataset.labelled[0]
    label = np.asanyarray(nib.load(str(phantom_dataset.path(case.label))).dataobj) > 0
    shifted = np.roll(label, 1, axis=axis)
    row = read_rows(tmp_path / "out" / "cases.csv")[0]
    assert float(row["nsd"]) == pytest.approx(surface_dice(label, shifted, (2.5, 2.5, 5.0), 3.0))
    assert float(row["dice"]) == pytest.approx(dice(label, shifted))


def test_tolerance_option_changes_nsd(phantom_dataset, tmp_path):
    predictions = write_predictions(phantom_dataset, tmp_path / "pred",
                                    lambda a: np.roll(a, 1, axis=2))
    strict = evaluate(data=phantom_dataset.root, predictions=predictions, out=tmp_path / "a",
                      tolerance=1.0)
    loose = evaluate(data=phantom_dataset.root, predictions=predictions, out=tmp_path / "b",
                     tolerance=6.0)
    assert strict[1]["mean"] < loose[1]["mean"] == pytest.approx(1.0)
    assert "NSD (1 mm)" in (tmp_path / "a" / "summary.md").read_text()


def test_model_run_is_evaluated_on_the_label_grid(phantom_dataset, make_run, tmp_path):
    run = make_run()
    summary = evaluate(model_dir=run, data=phantom_dataset.root)
    out = run / "evaluation" / phantom_dataset.name
    for case in phantom_dataset.labelled:
        mask = nib.load(str(out / "predictions" / f"{case.id}.nii.gz"))
        label = nib.load(str(phantom_dataset.path(case.label)))
        assert mask.shape == label.shape and np.allclose(mask.affine, label.affine)
    assert all(0.0 <= row["mean"] <= 1.0 for row in summary)
    assert (out / "summary.md").is_file()


def test_split_scores_only_that_part_of_the_runs_saved_split(phantom_dataset, make_run):
    import json

    run = make_run()
    ids = [case.id for case in phantom_dataset.cases]
    (run / "split.json").write_text(json.dumps({"seed": 0, "train": ids[1:], "tuning": ids[:1]}))
    evaluate(model_dir=run, data=phantom_dataset.root, split="tuning")
    rows = read_rows(run / "evaluation" / f"{phantom_dataset.name}-tuning" / "cases.csv")
    assert [row["id"] for row in rows] == ids[:1]
    (run / "split.json").write_text(json.dumps({"train": ids, "tuning": ["not_in_the_data"]}))
    with pytest.raises(TfcovsegError, match="1 of the run's 1 tuning cases are not labelled"):
        evaluate(model_dir=run, data=phantom_dataset.root, split="tuning")
    with pytest.raises(TfcovsegError, match="split must be one of train, tuning"):
        evaluate(model_dir=run, data=phantom_dataset.root, split="test")


def test_cases_of_one_patient_are_averaged_first():
    rows = [{"patient": "p1", "dice": 0.2, "nsd": 1.0}, {"patient": "p1", "dice": 0.4, "nsd": 1.0},
            {"patient": "p2", "dice": 0.9, "nsd": math.nan}]
    dice_row, nsd_row = summarise(rows)
    assert dice_row["n"] == 2 and dice_row["mean"] == pytest.approx((0.3 + 0.9) / 2)
    assert dice_row["lowest"] == pytest.approx(0.3)
    assert nsd_row["n"] == 1 and nsd_row["excluded"] == 1


def test_prediction_on_another_grid_is_refused(phantom_dataset, tmp_path):
    predictions = write_predictions(phantom_dataset, tmp_path / "pred", lambda a: a[::-1])
    case = phantom_dataset.labelled[0]
    label = nib.load(str(phantom_dataset.path(case.label)))
    flipped = nib.as_closest_canonical(label).as_reoriented([[0, -1], [1, 1], [2, 1]])
    save_image(flipped, predictions / f"{case.id}.nii.gz")
    with pytest.raises(TfcovsegError, match="not on the label's grid"):
        evaluate(data=phantom_dataset.root, predictions=predictions, out=tmp_path / "out")


def test_missing_or_non_binary_predictions_are_refused(phantom_dataset, tmp_path):
    empty = tmp_path / "none"
    empty.mkdir()
    with pytest.raises(TfcovsegError, match="no prediction for case"):
        evaluate(data=phantom_dataset.root, predictions=empty, out=tmp_path / "out")
    scaled = write_predictions(phantom_dataset, tmp_path / "scaled", lambda a: a * 255)
    with pytest.raises(TfcovsegError, match="prediction values 255 are not those of a lesion "
                       r"mask \(0 background, 1 lesion\)") as err:
        evaluate(data=phantom_dataset.root, predictions=scaled, out=tmp_path / "out")
    assert str(scaled / f"{phantom_dataset.labelled[0].id}.nii.gz") in str(err.value)
    assert not (tmp_path / "out").exists()


def test_model_and_predictions_are_mutually_exclusive(phantom_dataset, tmp_path):
    with pytest.raises(TfcovsegError, match="either --model"):
        evaluate(data=phantom_dataset.root)
    with pytest.raises(TfcovsegError, match="either --model"):
        evaluate(model_dir=tmp_path, predictions=tmp_path, data=phantom_dataset.root)


def test_an_export_is_evaluated_like_a_run(phantom_dataset, tmp_path):
    from standins import tiny_unet

    from tfcovseg.infer.export import export_keras_model
    from tfcovseg.rundir import InputSpec

    export_dir = tmp_path / "export"
    export_keras_model(tiny_unet(), InputSpec(size=(8, 16, 16)), export_dir)
    summary = evaluate(model_dir=export_dir, data=phantom_dataset.root)
    assert (export_dir / "evaluation" / phantom_dataset.name / "cases.csv").is_file()
    assert summary[0]["n"] + summary[0]["excluded"] == len(phantom_dataset.labelled)


def test_evaluation_config_supplies_data_and_tolerance_and_options_override(phantom_dataset, tmp_path):
    from tfcovseg.infer.evaluate import evaluate_configured

    shifted = write_predictions(phantom_dataset, tmp_path / "pred", lambda a: np.roll(a, 1, axis=2))
    config = tmp_path / "eval.yaml"
    config.write_text(f"data: {phantom_dataset.root}\ntolerance: 6.0\n")
    loose = evaluate_configured(config=str(config), predictions=shifted, out=tmp_path / "a")
    strict = evaluate_configured(config=str(config), predictions=shifted, out=tmp_path / "b",
                                 tolerance=1.0)
    nsd = {"loose": loose[1], "strict": strict[1]}
    assert nsd["loose"]["metric"] == "nsd" and nsd["loose"]["mean"] == 1.0  # 5 mm shift < 6 mm
    assert nsd["strict"]["mean"] < 1.0
    config.write_text("tolerence: 2\n")
    with pytest.raises(TfcovsegError, match="tolerence"):
        evaluate_configured(config=str(config), predictions=shifted)


MA_WINDOW = (-1250.0, 250.0)


@pytest.fixture
def windowed_dataset(tmp_path):
    """Two sphere CTs windowed to [-1250, 250] HU and rescaled to 0..255, flagged ``windowed``
    as the converters flag them; the spheres are the labels."""
    cases = []
    for i, centre in enumerate([(0.5, 0.5, 0.5), (0.4, 0.6, 0.5)]):
        hu, inside = sphere_ct(centre=centre)
        windowed = np.rint((hu - MA_WINDOW[0]) / 1500 * 255)
        files = case_files(f"w{i}")
        write_volume(tmp_path / files["image"], windowed, np.diag([0.7, 0.8, 5.0, 1.0]), np.uint8)
        write_volume(tmp_path / files["label"], inside, np.diag([0.7, 0.8, 5.0, 1.0]), np.uint8)
        cases.append(Case(id=f"w{i}", image=files["image"], label=files["label"],
                          flags=["windowed"]))
    write_dataset(Dataset(root=tmp_path, name="windowed", cases=cases))
    return load_dataset(tmp_path)


def test_a_case_flagged_windowed_is_refused_unless_its_window_is_given(windowed_dataset,
                                                                       make_run):
    run = make_run(pointwise=True)
    with pytest.raises(DataError, match="case 'w0' is flagged windowed in dataset.json: .* "
                       r"not in HU; declare the window .* --input-window LOW HIGH \(HU\)") as err:
        evaluate(model_dir=run, data=windowed_dataset.root)
    assert err.value.path == str(windowed_dataset.path("images/w0.nii.gz"))
    assert not (run / "evaluation").exists()
    summary = evaluate(model_dir=run, data=windowed_dataset.root, input_window=MA_WINDOW)
    assert {row["metric"]: row for row in summary}["dice"]["lowest"] > 0.9


def test_a_case_flagged_not_hu_is_refused(phantom_dataset, make_run, tmp_path):
    root = tmp_path / "raw"
    shutil.copytree(phantom_dataset.root, root)
    manifest = json.loads((root / "dataset.json").read_text())
    manifest["cases"][1]["flags"] = ["not_hu"]
    (root / "dataset.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="case 'phantoms_001' is flagged not_hu"):
        evaluate(model_dir=make_run(), data=root, input_window=MA_WINDOW)


def test_a_label_with_undeclared_values_is_refused_before_any_prediction(phantom_dataset,
                                                                         make_run, tmp_path):
    root = tmp_path / "relabelled"
    shutil.copytree(phantom_dataset.root, root)
    last = root / phantom_dataset.cases[-1].label
    label = nib.load(str(last))
    save_image(nib.Nifti1Image(np.full(label.shape, 2, np.uint8), label.affine), last)
    run = make_run()
    with pytest.raises(DataError, match="case 'phantoms_003': label values 2 are not declared "
                       'in dataset.json "labels"') as err:
        evaluate(model_dir=run, data=root)
    assert err.value.path == str(last)
    assert not (run / "evaluation").exists()


@pytest.mark.parametrize("options, problem", [
    pytest.param({"tolerance": 0.0}, "the NSD tolerance must be a positive number of mm, got 0",
                 id="zero-tolerance"),
    pytest.param({"input_window": MA_WINDOW}, "--input-window is for images predicted with "
                 "--model", id="window-without-model"),
])
def test_options_that_cannot_apply_are_refused(phantom_dataset, tmp_path, options, problem):
    predictions = write_predictions(phantom_dataset, tmp_path / "pred")
    with pytest.raises(ConfigError, match=problem):
        evaluate(data=phantom_dataset.root, predictions=predictions, out=tmp_path / "out",
                 **options)
    assert not (tmp_path / "out").exists()


def test_sliding_window_settings_are_refused_before_the_model_loads(phantom_dataset, tmp_path):
    with pytest.raises(ConfigError, match="batch size must be a whole number of windows >= 1"):
        evaluate(model_dir=tmp_path / "no-model-here", data=phantom_dataset.root, batch_size=0)


def test_a_patch_run_at_a_target_spacing_is_evaluated_with_mirroring(phantom_dataset, make_run,
                                                                    tmp_path):
    run = make_run(mode="patch", size=(8, 16, 16), spacing=(10.0, 5.0, 5.0))  # phantoms: 5 x 2.5 x 2.5
    evaluate(model_dir=run, data=phantom_dataset.root, out=tmp_path / "out", tta_axes=(1, 2))
    for case in phantom_dataset.labelled:  # masks on the labels' own grid
        label = nib.load(str(phantom_dataset.path(case.label)))
        mask = nib.load(str(tmp_path / "out" / "predictions" / f"{case.id}.nii.gz"))
        assert mask.shape == label.shape and np.allclose(mask.affine, label.affine)


def test_cases_that_do_not_fit_the_model_are_refused_before_any_is_predicted(phantom_dataset,
                                                                            make_run, tmp_path):
    run = make_run(mode="patch", size=(8, 16, 16), spacing=(500.0, 2.5, 2.5))  # 24 x 5 mm < 250 mm
    with pytest.raises(DataError, match="thinner than half a voxel of the model's target") as err:
        evaluate(model_dir=run, data=phantom_dataset.root, out=tmp_path / "out")
    assert err.value.path == str(phantom_dataset.path(phantom_dataset.labelled[0].image))
    assert not (tmp_path / "out").exists()


def test_mirroring_is_refused_for_a_predictions_folder(phantom_dataset, tmp_path):
    predictions = write_predictions(phantom_dataset, tmp_path / "pred")
    with pytest.raises(ConfigError, match="--tta is for images predicted with --model, not for "
                       "--predictions"):
        evaluate(data=phantom_dataset.root, predictions=predictions, tta_axes=(0, 1, 2))
