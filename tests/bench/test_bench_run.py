"""End to end: a tiny grid on phantom slices, resumed, filtered, sharded and on Ray."""

import json

import numpy as np
import pytest
import yaml

from tfcovseg.bench import load_cell_model, store
from tfcovseg.bench.run import run_bench
from tfcovseg.errors import TfcovsegError

IDS = ["lungs-pspnet-resnet18-random", "lungs-unet-resnet18-random"]


def tiny_config(tmp_path, name="tiny", **grid) -> str:
    config = {
        "name": name,
        "out": str(tmp_path / name),
        "data": {"train": str(tmp_path / "phantoms"), "test": None, "validation_cases": 1,
                 "test_cases": 1, "phantoms": {"cases": 3, "shape": [4, 32, 32]}},
        "pipeline": {"size": [32, 32]},
        "grid": {"archs": ["unet", "pspnet"], "encoders": ["resnet18"], "inits": ["random"],
                 "experiments": ["lungs"]},
        "training": {"epochs": 2},
        "evaluation": {"figure_slice": 2},
    }
    config["grid"].update(grid)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("bench")
    config = tiny_config(tmp_path)
    return config, run_bench(config)


def test_every_cell_writes_result_weights_arrays_and_the_report(bench):
    _, bench_dir = bench
    for cell_id in IDS:
        result = store.read_result(bench_dir, cell_id)
        assert result["status"] == "done"
        assert set(result["metrics"]) == {"sensitivity", "specificity", "dice"}
        assert all(0.0 <= v <= 1.0 for v in result["metrics"].values())
        assert len(result["train_loss"]) == len(result["validation_loss"]) == 2
        assert result["best_validation_loss"] == min(result["validation_loss"])
        assert result["test_images"] == 4  # one held-out phantom of 4 slices
        assert 0 <= result["missed_images"] <= 4
        assert result["train_seconds_per_image"] > 0 and result["parameters"] > 1e6
        assert result["config"]["grid"]["archs"] == ["unet", "pspnet"]
        # float32 layer weights (with BN statistics) only: no Adam moments
        assert store.weights_path(bench_dir, cell_id).stat().st_size < 1.1 * 4 * result["parameters"]
        assert "volume_prediction" in store.read_arrays(bench_dir, cell_id)
    assert (bench_dir / "report.md").is_file() and (bench_dir / "results.csv").is_file()
    assert (bench_dir / "figures" / "fig5_losses_lungs.png").is_file()


def test_a_cell_loads_with_one_call_with_its_kept_weights(bench):
    _, bench_dir = bench
    model = load_cell_model(bench_dir, "lungs-unet-resnet18-random")
    kept = store.read_arrays(bench_dir, "lungs-unet-resnet18-random")["filters_after"]
    first_kernel = model.get_layer("encoder_conv1").kernel.numpy()  # smp's encoder.conv1
    np.testing.assert_array_equal(first_kernel, kept)
    assert model(np.zeros((1, 32, 32, 1), np.float32)).shape == (1, 32, 32, 1)


def test_rerun_skips_finished_cells(bench, capsys):
    config, bench_dir = bench
    before = {i: store.result_path(bench_dir, i).stat().st_mtime_ns for i in IDS}
    run_bench(config)
    assert "2 already finished, 0 to run" in capsys.readouterr().out
    assert {i: store.result_path(bench_dir, i).stat().st_mtime_ns for i in IDS} == before


def test_a_cell_killed_before_its_result_is_written_runs_again(bench, capsys):
    config, bench_dir = bench
    store.result_path(bench_dir, IDS[0]).unlink()  # as if killed while training
    run_bench(config, only="arch=pspnet|unet")
    out = capsys.readouterr().out
    assert "1 already finished, 1 to run" in out and f"{IDS[0]}: test Dice" in out
    assert store.is_finished(bench_dir, IDS[0])


def test_shards_and_filters_select_cells(tmp_path, capsys):
    from tfcovseg.bench.run import load_bench_config, plan

    config = load_bench_config(tiny_config(tmp_path))
    shards = [plan(config, shard_spec=f"{k}/2") for k in (1, 2)]
    assert sorted(c.id for s in shards for c in s) == IDS
    assert [c.id for c in plan(config, only="arch=unet")] == [IDS[1]]
    with pytest.raises(TfcovsegError, match="--only encoder=vgg16: not in the config's grid"):
        plan(config, only="encoder=vgg16")


def test_data_and_out_options_override_the_config(tmp_path):
    from tfcovseg.bench.run import load_bench_config

    config = load_bench_config(tiny_config(tmp_path), data="/a/medseg,/b/rp", out="/c/bench")
    assert (config.data.train, config.data.test, config.out) == ("/a/medseg", "/b/rp", "/c/bench")


def test_cells_run_as_ray_tasks(tmp_path, capsys):
    ray = pytest.importorskip("ray")
    config = tiny_config(tmp_path, name="on_ray")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=True)
    try:
        bench_dir = run_bench(config, only="arch=unet", ray_address="local")
    finally:
        ray.shutdown()
    assert "[1/1 done] lungs-unet-resnet18-random: test Dice" in capsys.readouterr().out
    result = json.loads(store.result_path(bench_dir, IDS[1]).read_text())
    assert result["status"] == "done"
    assert not store.result_path(bench_dir, IDS[0]).exists()


@pytest.mark.parametrize("networks, reason", [
    pytest.param("paper", "no converted ImageNet weights for resnet18", id="paper"),
    pytest.param("segmentation_models", "offline", id="segmentation_models"),
])
def test_imagenet_cells_without_weights_are_marked_summarised_and_retried(
        tmp_path, monkeypatch, capsys, networks, reason):
    import tensorflow as tf

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://example.invalid/w.h5: None -- offline")

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(tf.keras.utils, "get_file", offline)
    path = tiny_config(tmp_path, name="offline", archs=["unet"], inits=["imagenet"])
    config = yaml.safe_load((tmp_path / "offline.yaml").read_text())
    config["architectures"] = {"networks": networks}
    (tmp_path / "offline.yaml").write_text(yaml.safe_dump(config))

    bench_dir = run_bench(path)
    out = capsys.readouterr().out
    cell_id = "lungs-unet-resnet18-imagenet"
    assert "1 cell(s) got no ImageNet weights" in out and cell_id in out
    result = store.read_result(bench_dir, cell_id)
    assert result["status"] == "no_imagenet_weights" and reason in result["reason"]
    assert "Cells without ImageNet weights" in (bench_dir / "report.md").read_text()
    run_bench(path)
    assert "0 already finished, 1 to run" in capsys.readouterr().out


def test_an_empty_selection_runs_nothing_and_writes_no_report(tmp_path, capsys):
    bench_dir = run_bench(tiny_config(tmp_path, name="empty", archs=["unet"]), shard="2/2")
    assert "0 cells selected" in capsys.readouterr().out
    assert not (bench_dir / "report.md").exists()
