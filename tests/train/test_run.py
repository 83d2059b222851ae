import csv
import importlib.metadata
import json

import pytest
import tensorflow as tf
import yaml

from tfcovseg.errors import ConfigError, TfcovsegError
from tfcovseg.rundir import RunFolder
from tfcovseg.train import OneCycle, fit
from tfcovseg.train.run import train

TINY = [
    "stages=[{name: s1, size: [8, 32, 32], batch_size: 2, phases: "
    "[{epochs: 1, lr: 0.01, freeze_encoder: true}, {epochs: 2, lr: 0.001}]}]",
    "data.augment.enabled=false",
    "tensorboard=false",
]


def tiny_network(config):
    """A two-layer stand-in for the 95M-parameter U-Net, with an 'encoder_' layer to freeze."""
    inputs = tf.keras.Input((None, None, None, 1))
    x = tf.keras.layers.Conv3D(4, 3, padding="same", name="encoder_conv")(inputs)
    x = tf.keras.layers.BatchNormalization(name="encoder_bn")(x)
    x = tf.keras.layers.ReLU()(x)
    logits = tf.keras.layers.Conv3D(config.model.classes, 1, dtype="float32", name="logits")(x)
    return tf.keras.Model(inputs, logits)


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setattr(fit, "build_network", tiny_network)


def history(run_dir):
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def test_patch_mode_run_tunes_on_whole_volumes(tiny, phantom_dataset, tmp_path, monkeypatch):
    tuned_shapes = []
    whole = fit.whole_volume_dataset

    def recording(dataset, cases, cfg):
        tuned_shapes.extend(tuple(c.shape) for c in cases)
        return whole(dataset, cases, cfg)

    monkeypatch.setattr(fit, "whole_volume_dataset", recording)
    patch_stage = ("stages=[{name: p, mode: patch, size: [8, 16, 16], patch_size: [8, 16, 16], "
                   "batch_size: 2, phases: [{epochs: 1, lr: 0.01}]}]")
    run_dir = train(config="demo", data=str(phantom_dataset.root), out=str(tmp_path / "run"),
                    overrides=[patch_stage, *TINY[1:]])
    [row] = history(run_dir)
    assert row["val_loss"] == "" and row["stage"] == "p"  # no loss on whole volumes
    assert tuned_shapes and all(shape[1:] > (16, 16) for shape in tuned_shapes)


def test_train_writes_run_folder_that_prediction_can_read(tiny, phantom_dataset, tmp_path):
    run_dir = train(config="demo", data=str(phantom_dataset.root), out=str(tmp_path / "run"),
                    overrides=TINY)
    rows = history(run_dir)
    assert [(r["stage"], r["phase"], r["epoch"]) for r in rows] == [
        ("s1", "1", "1"), ("s1", "2", "2"), ("s1", "2", "3")]
    assert all(r["val_dice"] and r["val_loss"] and float(r["lr"]) > 0 for r in rows)
    split = json.loads((run_dir / "split.json").read_text())
    assert len(split["tuning"]) == 1 and len(split["train"]) == 3
    info = RunFolder(run_dir).read_info()
    assert info.input.size == (8, 32, 32) and info.input.mode == "resize"
    assert (run_dir / info.weights).is_file()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["finished"] and summary["best_tuning_dice"]["s1"] is not None
    env = json.loads((run_dir / "environment.json").read_text())
    assert env["precision"] in ("mixed_bfloat16", "float32") and env["tensorflow"]
    assert env["tf_keras"] == importlib.metadata.version("tf-keras")
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["stages"][0]["name"] == "s1"
    assert len(list((run_dir / "checkpoints").glob("last-*"))) == 1


def test_resume_continues_killed_run_from_last_completed_epoch(tiny, phantom_dataset, tmp_path,
                                                             monkeypatch):
    out = tmp_path / "run"

    class Killed(Exception):
        pass

    real_on_epoch_end = fit.RunRecorder.on_epoch_end

    def kill_after_second_epoch(self, epoch, logs=None):
        real_on_epoch_end(self, epoch, logs)
        if self.position.phase == 1 and epoch == 0:
            raise Killed

    monkeypatch.setattr(fit.RunRecorder, "on_epoch_end", kill_after_second_epoch)
    with pytest.raises(Killed):
        train(config="demo", data=str(phantom_dataset.root), out=str(out), overrides=TINY)
    assert len(history(out)) == 2
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    assert (state["stage"], state["phase"], state["epoch"]) == (0, 1, 1)
    monkeypatch.setattr(fit.RunRecorder, "on_epoch_end", real_on_epoch_end)
    train(resume=str(out))
    rows = history(out)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    # 3 training phantoms in batches of 2: the resumed epoch ends on step 4 of 4 of phase 2.
    assert float(rows[2]["lr"]) == pytest.approx(OneCycle(1e-3, total_steps=4).learning_rate(3),
                                                 rel=1e-5)
    assert json.loads((out / "summary.json").read_text())["finished"]


def test_train_refuses_dataset_without_labels(phantom_dataset, tmp_path):
    from tfcovseg.io.manifest import Dataset, write_dataset

    root = tmp_path / "unlabelled"
    cases = [dataclass_without_label(c, phantom_dataset.root) for c in phantom_dataset.cases]
    write_dataset(Dataset(root=root, name="unlabelled", cases=cases))
    with pytest.raises(TfcovsegError, match="train needs lesion labels"):
        train(config="demo", data=str(root), out=str(tmp_path / "run"))


def dataclass_without_label(case, root):
    import dataclasses

    return dataclasses.replace(case, image=str(root / case.image), label=None, lung=None)


def test_unknown_config_key_is_named_with_allowed_keys(tmp_path):
    with pytest.raises(TfcovsegError, match=r"unknown key stages\.0\.lrate; allowed keys: batch_size"):
        train(config="demo", out=str(tmp_path / "run"),
              overrides=["stages=[{name: s, size: [8, 8, 8], batch_size: 1, lrate: 1, phases: []}]"])


@pytest.mark.parametrize("overrides, message", [
    pytest.param(["data.lesion_fraction=2"], r"data\.lesion_fraction is 2\.0; allowed: \[0, 1\]",
                 id="fraction-out-of-range"),
    pytest.param(["model.width=0"], r"model\.width is 0\.0; allowed: > 0", id="zero-width"),
    pytest.param(["data.tuning_fractoin=0.2", "precision=fp8"],
                 r"unknown key data\.tuning_fractoin \(did you mean data\.tuning_fraction\?\).*"
                 r"precision is 'fp8'; allowed values: 'auto'", id="typo-and-bad-choice-together"),
])
def test_bad_config_is_refused_before_the_run_folder_exists(tmp_path, overrides, message):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=message) as err:
        train(config="demo", out=str(out), overrides=overrides)
    assert "command-line overrides" in str(err.value) and not out.exists()


def test_unfrozen_session_starts_with_a_fresh_optimizer_as_after_fastai_unfreeze(
        tiny, phantom_dataset, tmp_path, monkeypatch):
    resets = []
    real_reset = fit.reset_optimizer_state

    def recording(optimizer):
        resets.append(int(optimizer.iterations))
        real_reset(optimizer)
        assert int(optimizer.iterations) == 0

    monkeypatch.setattr(fit, "reset_optimizer_state", recording)
    train(config="demo", data=str(phantom_dataset.root), out=str(tmp_path / "fastai"),
          overrides=TINY)
    assert resets == [2]  # once, after the frozen session's 2 steps
    train(config="demo", data=str(phantom_dataset.root), out=str(tmp_path / "carried"),
          overrides=[*TINY, "optimizer.reset_on_freeze_change=false"])
    assert resets == [2]


@pytest.mark.parametrize("best_of, keys", [
    pytest.param("session", {"s1/1", "s1/2"}, id="fastai-per-session"),
    pytest.param("stage", {"s1"}, id="carried-over-the-stage"),
])
def test_best_tuning_dice_is_tracked_per_session_or_per_stage(tiny, phantom_dataset, tmp_path,
                                                              best_of, keys):
    run_dir = train(config="demo", data=str(phantom_dataset.root), out=str(tmp_path / "run"),
                    overrides=[*TINY, f"checkpoint.best_of={best_of}",
                               "checkpoint.metric=per_volume"])
    best = json.loads((run_dir / "checkpoints" / "state.json").read_text())["best"]
    assert set(best) == keys
    dice = [float(r["val_dice"]) for r in history(run_dir)]
    last = best["s1/2"] if best_of == "session" else best["s1"]
    # history.csv keeps 6 significant digits
    assert last == pytest.approx(max(dice[1:]) if best_of == "session" else max(dice), rel=1e-5)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["best_tuning_dice"]["s1"] == pytest.approx(last)


def test_train_refuses_undeclared_label_values_before_the_run_folder_exists(phantom_dataset,
                                                                             tmp_path):
    import shutil

    import nibabel as nib
    import numpy as np

    root = tmp_path / "data"
    shutil.copytree(phantom_dataset.root, root)
    path = root / phantom_dataset.cases[1].label
    label = nib.load(str(path))
    nib.save(nib.Nifti1Image((np.asanyarray(label.dataobj) * 2).astype(np.uint8), label.affine),
             str(path))
    out = tmp_path / "run"
    with pytest.raises(TfcovsegError, match=r"label values 2 are not declared") as err:
        train(config="demo", data=str(root), out=str(out))
    assert err.value.path == str(path) and not out.exists()
