"""tfcovseg.load_model: each kind of model file comes back with its weights and its input spec;
anything else is one error naming the path and the kinds accepted."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tfcovseg
from tfcovseg.errors import WeightsError
from tfcovseg.settings.data import Intensity

KEY_LISTS = Path(__file__).resolve().parent / "models" / "fixtures" / "faimed3d-state-dict-keys"
QUARTER = {"width": 0.25, "lesion_prior": None}  # the demo's quarter-width U-Net
RUN_SIZE = (16, 32, 32)


def save_run(folder: Path, arguments=QUARTER, seed=0):
    """A run folder as training leaves it, holding a random U-Net (no training needed)."""
    import tensorflow as tf

    from tfcovseg.files import save_weights
    from tfcovseg.models import unet3d
    from tfcovseg.rundir import InputSpec, RunFolder, RunInfo

    tf.keras.utils.set_random_seed(seed)
    model = unet3d(**arguments)
    run = RunFolder(folder)
    run.checkpoints.mkdir(parents=True)
    save_weights(model, run.root / run.best_weights("s1"))
    spec = InputSpec(mode="resize", size=RUN_SIZE, intensity=Intensity())
    run.write_info(RunInfo(model=dict(arguments), input=spec, weights=run.best_weights("s1")))
    return model, spec


def volume(shape=(1, *RUN_SIZE, 1), seed=0):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def test_run_folder_loads_with_its_weights_and_input_spec(tmp_path):
    saved, spec = save_run(tmp_path / "run")
    loaded = tfcovseg.load_model(tmp_path / "run")
    assert (loaded.kind, loaded.spec, loaded.source) == ("run", spec, tmp_path / "run")
    np.testing.assert_array_equal(loaded.model(volume(), training=False).numpy(),
                                  saved(volume(), training=False).numpy())


def test_converted_faimed3d_unet_loads_from_its_weights_file_alone(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    from tfcovseg.models.convert import convert_weights
    from tfcovseg.models.runs import FAIMED3D_INPUT

    lines = (KEY_LISTS / "later-7287c68.txt").read_text().splitlines()
    shapes = {key: ast.literal_eval(shape) for key, shape in (line.split(" ", 1) for line in lines)}
    state_dict = {key: np.zeros(shape, np.float32) for key, shape in shapes.items()}
    final = np.random.default_rng(0).normal(size=shapes["layers.9.0.weight"]).astype(np.float32)
    state_dict["layers.9.0.weight"] = final  # the 1x1x1 head conv (out, in, 1, 1, 1)
    safetensors_numpy.save_file(state_dict, str(tmp_path / "later.safetensors"))
    convert_weights(faimed3d=tmp_path / "later.safetensors", out=tmp_path / "unet.h5")
    loaded = tfcovseg.load_model(tmp_path / "unet.h5")
    assert (loaded.kind, loaded.spec) == ("faimed3d", FAIMED3D_INPUT)
    assert loaded.model.input_shape[-1] == 1  # later faimed3d: summed 1-channel stem
    kernel = loaded.model.get_layer("head_conv").kernel.numpy()
    np.testing.assert_array_equal(kernel, final.transpose(2, 3, 4, 1, 0))


def test_converted_torchvision_encoder_loads_as_r3d18(tmp_path):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    from tfcovseg.models.convert import convert_weights
    from tfcovseg.models.runs import ENCODER_INPUT

    torch.manual_seed(0)
    state_dict = torchvision.models.video.r3d_18(weights=None).state_dict()
    torch.save(state_dict, tmp_path / "r3d_18.pth")
    convert_weights(torchvision=tmp_path / "r3d_18.pth", out=tmp_path / "r3d18.h5")
    loaded = tfcovseg.load_model(tmp_path / "r3d18.h5")
    assert (loaded.kind, loaded.spec) == ("torchvision_encoder", ENCODER_INPUT)
    np.testing.assert_array_equal(loaded.model.get_layer("encoder_stem_conv").kernel.numpy(),
                                  state_dict["stem.0.weight"].numpy().transpose(2, 3, 4, 1, 0))


def save_cell(bench_dir: Path, size=32):
    from tfcovseg.bench import store
    from tfcovseg.bench.cell import save_layer_weights
    from tfcovseg.bench.grid import Cell
    from tfcovseg.bench.models2d import build_cell_model
    from tfcovseg.config import to_dict
    from tfcovseg.settings.bench import Architectures, BenchConfig

    cell = Cell("lesions", "unet", "resnet18", "random")
    model = build_cell_model(cell, Architectures(), size)
    save_layer_weights(model, store.weights_path(bench_dir, cell.id))
    store.write_result(bench_dir, {"id": cell.id, "cell": vars(cell), "status": store.DONE,
                                   "image_size": size, "config": to_dict(BenchConfig())})
    return model, cell.id


@pytest.mark.parametrize("name", [
    pytest.param("{id}", id="cell"),
    pytest.param("{id}.json", id="result-file"),
    pytest.param("{id}.weights.h5", id="weights-file"),
])
def test_grid_cell_loads_with_the_grid_2d_settings(tmp_path, name):
    from tfcovseg.loader import SliceSpec

    saved, cell_id = save_cell(tmp_path / "bench")
    loaded = tfcovseg.load_model(tmp_path / "bench" / "cells" / name.format(id=cell_id))
    assert loaded.kind == "grid_cell"
    assert loaded.spec == SliceSpec(size=(32, 32), experiment="lesions",
                                    intensity=Intensity(scaling="fixed", mean=-500.0, std=500.0))
    image = volume((1, 32, 32, 1))
    np.testing.assert_array_equal(loaded.model(image, training=False).numpy(),
                                  saved(image, training=False).numpy())


@pytest.mark.parametrize("make", [
    pytest.param(lambda p: p.mkdir(), id="empty-folder"),
    pytest.param(lambda p: p.write_text("{}"), id="some-file"),
    pytest.param(lambda p: None, id="missing"),
])
def test_a_path_that_is_no_model_names_itself_and_the_kinds_accepted(tmp_path, make):
    path = tmp_path / "thing"
    make(path)
    with pytest.raises(WeightsError) as error:
        tfcovseg.load_model(path)
    message = str(error.value)
    assert str(path) in message
    for kind in ("training run folder (with run.json)", "convert-weights --faimed3d",
                 "--torchvision", "2D grid cell (BENCH_DIR/cells/<cell id>"):
        assert kind in message


def test_weights_file_without_its_sidecar_says_so(tmp_path):
    (tmp_path / "unet.h5").touch()
    with pytest.raises(WeightsError, match="no unet.json beside the weights file"):
        tfcovseg.load_model(tmp_path / "unet.h5")


def test_sidecar_of_another_kind_is_named(tmp_path):
    (tmp_path / "unet.h5").touch()
    (tmp_path / "unet.json").write_text(json.dumps({"kind": "something-else"}))
    with pytest.raises(tfcovseg.TfcovsegError, match="kind is 'something-else'"):
        tfcovseg.load_model(tmp_path / "unet.h5")


def test_load_model_is_importable_from_the_package_without_loading_tensorflow_first():
    code = ("import sys, tfcovseg; assert 'tensorflow' not in sys.modules; "
            "load = tfcovseg.load_model; assert 'tensorflow' in sys.modules; print(load.__module__)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "tfcovseg.loader"
