"""The whole path a user walks, through the CLI with the real (quarter-width) U-Net:
synth -> train -> evaluate --split tuning -> predict -> export, each step reading what the last
one wrote."""

import json

import nibabel as nib
from click.testing import CliRunner

from tfcovseg.cli import main

SHAPE = ("16", "32", "32")
TRAIN_OVERRIDES = [
    "stages=[{name: s1, size: [16, 32, 32], batch_size: 2, phases: [{epochs: 1, lr: 0.01}]}]",
    "model.width=0.25", "model.lesion_prior=0.01", "data.tuning_fraction=0.25",
    "data.augment.enabled=false", "tensorboard=false", "precision=float32",
]


def invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_synth_train_evaluate_predict_export(tmp_path):
    data, run = tmp_path / "phantoms", tmp_path / "run"
    invoke("synth", data, "--cases", 8, "--shape", *SHAPE, "--spacing", 10, 5, 5)
    printed = invoke("train", "--data", data, "--out", run, *TRAIN_OVERRIDES)
    assert "Next:" in printed and (run / "run.json").is_file()

    invoke("evaluate", "--model", run, "--split", "tuning")
    summary = (run / "evaluation").rglob("summary.csv")
    assert any(summary), "evaluate wrote no summary under the run folder"

    ct = data / "images" / "phantoms_000.nii.gz"
    mask = run / "predictions" / "phantoms_000_lesions.nii.gz"
    invoke("predict", "--model", run, ct, "--out", mask)
    assert nib.load(mask).shape == nib.load(ct).shape
    report = json.loads(mask.with_name("phantoms_000_lesions_report.json").read_text())
    assert report["lung_ml"]["total"] > 0

    export = tmp_path / "export"
    invoke("export", "--model", run, "--out", export)
    assert (export / "1" / "saved_model.pb").is_file()
    assert json.loads((export / "tfcovseg_export.json").read_text())["input"]["size"] == [16, 32, 32]
