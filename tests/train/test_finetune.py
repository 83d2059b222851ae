"""Fine-tuning (train --init): the run starts from the loaded weights, scores the tuning split
before and after, takes the model's settings; every wrong start is one error before any file."""

import json

import numpy as np
import pytest
import yaml

import tfcovseg
from tfcovseg.errors import ConfigError, TfcovsegError, WeightsError
from tfcovseg.files import write_json
from tfcovseg.metrics import dice
from tfcovseg.models.convert import SIDECAR_KIND
from tfcovseg.rundir import InputSpec, RunFolder, RunInfo
from tfcovseg.settings.data import Intensity
from tfcovseg.train.run import train

QUARTER = {"width": 0.25, "lesion_prior": None}  # untrained, it predicts lesions everywhere
SIZE = (16, 32, 32)
ONE_EPOCH = [
    "stages=[{name: ft, size: [16, 32, 32], batch_size: 2, phases: "
    "[{epochs: 1, lr: 0.001, freeze_encoder: true}]}]",
    "data.augment.enabled=false",
    "data.tuning_fraction=0.5",
    "tensorboard=false",
    "precision=float32",
]


def describe_run(folder, model=QUARTER, intensity=None):
    """A run folder's run.json alone: what --init reads before any weights are loaded."""
    run = RunFolder(folder)
    run.root.mkdir(parents=True)
    spec = InputSpec(mode="resize", size=SIZE, intensity=intensity or Intensity())
    run.write_info(RunInfo(model=dict(model), input=spec, weights=run.best_weights("s1")))
    return run


def save_run(folder, seed=1):
    """A run folder with a random quarter-width U-Net as its best weights."""
    import tensorflow as tf

    from tfcovseg.files import save_weights
    from tfcovseg.models import unet3d

    run = describe_run(folder)
    tf.keras.utils.set_random_seed(seed)  # not the fine-tuning run's seed
    run.checkpoints.mkdir()
    save_weights(unet3d(**QUARTER), run.root / run.best_weights("s1"))
    return run


def lesion_dice_per_case(model, dataset, case_ids):
    """The loaded model's Dice per tuning volume at the run's grid, worked out here."""
    from tfcovseg.data.pipeline3d import volume_dataset
    from tfcovseg.settings.data import Pipeline3D

    cases = [dataset.case(i) for i in case_ids]
    volumes = volume_dataset(dataset, cases, Pipeline3D(size=SIZE), batch_size=1, training=False)
    scores = {}
    for case, (image, label) in zip(cases, volumes):
        predicted = np.argmax(model(image, training=False).numpy(), axis=-1)[0] == 1
        scores[case.id] = dice(label.numpy()[0, ..., 0] == 1, predicted)
    return scores


def test_finetuning_starts_from_the_loaded_weights_and_scores_before_and_after(
        phantom_dataset, tmp_path):
    start = save_run(tmp_path / "start")
    out = train(config="demo", data=str(phantom_dataset.root), out=str(tmp_path / "tuned"),
                init=str(start.root), overrides=ONE_EPOCH)
    summary = json.loads((out / "summary.json").read_text())
    tuning = json.loads((out / "split.json").read_text())["tuning"]
    loaded = tfcovseg.load_model(start.root)
    expected = lesion_dice_per_case(loaded.model, phantom_dataset, tuning)
    assert any(score > 0 for score in expected.values())  # a model that finds something
    before = summary["before"]
    assert sorted(before["cases"]) == sorted(tuning)
    for case_id, score in expected.items():
        assert before["cases"][case_id]["dice"] == pytest.approx(score, abs=1e-6)
        assert 0.0 <= before["cases"][case_id]["nsd"] <= 1.0
    tuned = tfcovseg.load_model(out)
    after = lesion_dice_per_case(tuned.model, phantom_dataset, tuning)
    assert summary["after"]["dice"] == pytest.approx(np.nanmean(list(after.values())), abs=1e-6)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["init"] == str(start.root.resolve())
    assert config["model"] == {**QUARTER, "classes": 2, "encoder_weights": None,
                               "skip_norm": "batch", "encoder_norm": True,
                               "input_channels": "tripled"}
    assert summary["init"] == str(start.root.resolve())


def test_model_settings_come_from_the_loaded_model(tmp_path):
    from tfcovseg.config import load_config, named_config
    from tfcovseg.settings.train import TrainConfig
    from tfcovseg.train.finetune import resolve_init

    arguments = {**QUARTER, "classes": 3, "skip_norm": "instance",
                 "encoder_weights": "weights/r3d18_kinetics400.h5"}
    start = describe_run(tmp_path / "start", model=arguments,
                         intensity=Intensity(clip=(-2000.0, 500.0)))
    config = load_config(TrainConfig, named_config("finetune"), [f"init={start.root}"])
    resolved, found = resolve_init(config)
    assert found.kind == "run"
    assert (resolved.model.classes, resolved.model.skip_norm, resolved.model.width) == (
        3, "instance", 0.25)
    assert resolved.model.encoder_weights is None  # the loaded weights replace Kinetics'
    assert resolved.data.intensity.clip == (-2000.0, 500.0)


@pytest.mark.parametrize("override, named", [
    pytest.param("model.width=0.5", "model.width is 0.5 in the config, 0.25 in the model",
                 id="width"),
    pytest.param("model.classes=3", "model.classes is 3 in the config, 2 in the model",
                 id="classes"),
    pytest.param("model.encoder_weights=w.h5", "model.encoder_weights is 'w.h5'",
                 id="encoder-weights"),
    pytest.param("data.intensity.scaling=fixed", "data.intensity is {", id="intensity"),
])
def test_a_conflicting_explicit_setting_is_an_error_naming_both(phantom_dataset, tmp_path,
                                                               override, named):
    start = describe_run(tmp_path / "start", model={**QUARTER, "classes": 2})
    with pytest.raises(ConfigError) as error:
        train(config="finetune", data=str(phantom_dataset.root), out=str(tmp_path / "tuned"),
              init=str(start.root), overrides=[override])
    assert named in str(error.value) and str(start.root) in str(error.value)
    assert not (tmp_path / "tuned").exists()


def test_a_finetuning_dataset_without_labels_is_refused_before_any_file(phantom_dataset, tmp_path):
    import dataclasses

    from tfcovseg.io.manifest import Dataset, write_dataset

    start = describe_run(tmp_path / "start")
    root = tmp_path / "unlabelled"
    cases = [dataclasses.replace(c, image=str(phantom_dataset.root / c.image), label=None, lung=None)
             for c in phantom_dataset.cases]
    write_dataset(Dataset(root=root, name="unlabelled", cases=cases))
    with pytest.raises(TfcovsegError, match="train needs lesion labels"):
        train(config="finetune", data=str(root), out=str(tmp_path / "tuned"),
              init=str(start.root))
    assert not (tmp_path / "tuned").exists()


def grid_cell(tmp_path):
    from tfcovseg.bench import store

    cell_id = "lesions-unet-resnet18-random"
    store.write_result(tmp_path / "bench", {"id": cell_id, "status": store.DONE, "image_size": 512})
    store.weights_path(tmp_path / "bench", cell_id).touch()
    return store.cell_dir(tmp_path / "bench"), cell_id


@pytest.mark.parametrize("name, named", [
    pytest.param("{id}", "train --init needs a 3D U-Net", id="cell"),
    pytest.param("{id}.weights.h5", "kind is 'tfcovseg-bench-cell'", id="cell-weights"),
])
def test_a_2d_grid_cell_is_refused_as_a_start(phantom_dataset, tmp_path, name, named):
    cells, cell_id = grid_cell(tmp_path)
    with pytest.raises(TfcovsegError) as error:
        train(config="finetune", data=str(phantom_dataset.root), out=str(tmp_path / "tuned"),
              init=str(cells / name.format(id=cell_id)))
    assert named in str(error.value) and "tfcovseg-bench-cell" in str(error.value)
    assert not (tmp_path / "tuned").exists()


def test_encoder_weights_alone_point_to_model_encoder_weights(phantom_dataset, tmp_path):
    (tmp_path / "r3d18.h5").touch()
    write_json(tmp_path / "r3d18.json", {"kind": SIDECAR_KIND, "version": 1,
                                         "source": "torchvision", "arguments": {}})
    with pytest.raises(WeightsError, match="model.encoder_weights="):
        train(config="finetune", data=str(phantom_dataset.root), out=str(tmp_path / "tuned"),
              init=str(tmp_path / "r3d18.h5"))
    assert not (tmp_path / "tuned").exists()


def test_a_folder_that_is_no_model_is_named_with_what_init_takes(phantom_dataset, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError) as error:
        train(config="finetune", data=str(phantom_dataset.root), out=str(tmp_path / "tuned"),
              init=str(tmp_path / "empty"))
    message = str(error.value)
    assert str(tmp_path / "empty") in message
    assert "run.json" in message and "convert-weights --faimed3d" in message
