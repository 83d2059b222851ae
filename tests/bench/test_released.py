"""The authors' released models -> bench cells (``tfcovseg convert-grid``): file names, the cell
written, errors before anything is written. Checkpoints are smp models saved in the test with
the authors' naming (torch tests are marked ``reference``)."""

import sys
from unittest import mock

# triton (imported by timm through torch._dynamo) segfaults when loaded after TensorFlow
sys.modules.setdefault("triton", None)

# isort: off
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402

import tfcovseg  # noqa: E402, F401  (must precede TensorFlow: selects tf_keras)

from tfcovseg.bench import load_cell_model, released, store  # noqa: E402
from tfcovseg.bench.released import convert_grid, released_cell  # noqa: E402
from tfcovseg.cli import main  # noqa: E402
from tfcovseg.errors import ConfigError, WeightsError  # noqa: E402
# isort: on

SIZE = 512  # the authors' slices: a converted cell is built at this size


def save_smp_checkpoint(folder, name: str, arch: str, encoder: str):
    """``torch.save(model.state_dict())`` of an smp model as the authors built theirs."""
    smp = pytest.importorskip("segmentation_models_pytorch")
    import torch

    torch.manual_seed(0)
    model = getattr(smp, arch)(encoder, encoder_weights=None, in_channels=1, classes=1,
                               activation="sigmoid").eval()
    path = folder / name
    torch.save(model.state_dict(), path)
    return path, model


@pytest.mark.parametrize(("name", "cell_id"), [
    pytest.param("lung-segmentation-Unet-resnet18-None.pt", "lungs-unet-resnet18-random", id="lungs"),
    pytest.param("lesion-segmentation-a-FPN-resnext50_32x4d-imagenet.pt",
                 "lesions-fpn-resnext50-imagenet", id="lesions-a"),
    pytest.param("lesion-segmentation-b-Linknet-mobilenet_v2-None.pt",
                 "lesions_in_lungs-linknet-mobilenetv2-random", id="lesions-b"),
    pytest.param("lung-segmentation-PSPNet-efficientnet-b0-imagenet.pt",
                 "lungs-pspnet-efficientnetb0-imagenet", id="hyphenated-encoder"),
])
def test_the_authors_file_names_become_grid_cells(name, cell_id):
    assert released_cell(name).id == cell_id


def test_given_parts_replace_the_file_names():
    assert released_cell("lung-segmentation-Unet-resnet18-None.pt", init="imagenet",
                         arch="fpn").id == "lungs-fpn-resnet18-imagenet"
    assert released_cell("model.pt", experiment="lesions", arch="unet", encoder="mobilenet_v2",
                         init="random").id == "lesions-unet-mobilenetv2-random"


def test_a_name_that_does_not_parse_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "lung-segmentation-Unet-resnet18-None.pt").write_bytes(b"")
    (tmp_path / "models" / "lungs-unet.pt").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"lungs-unet\.pt: not a released model's name "
                                          r"\(\{lung-segmentation\|.*--experiment, --arch"):
        convert_grid(tmp_path / "models", tmp_path / "bench")
    assert not (tmp_path / "bench").exists()


def test_unknown_parts_are_named_with_the_allowed_values():
    with pytest.raises(ConfigError, match=r"unknown encoder 'resnet19' \(allowed: vgg11, "):
        released_cell("lung-segmentation-Unet-resnet19-None.pt")
    with pytest.raises(ConfigError, match=r"unknown arch 'segnet' \(allowed: unet, linknet"):
        released_cell("model.pt", experiment="lungs", arch="segnet", encoder="vgg11", init="random")


def test_two_files_that_would_be_one_cell_are_refused(tmp_path):
    for name in ("lung-segmentation-Unet-resnet18-None.pt", "lung-segmentation-FPN-resnet18-None.pt"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(ConfigError, match="several files would become cell.s. lungs-unet-resnet18-random"):
        convert_grid(tmp_path, tmp_path / "bench", arch="unet")


@pytest.mark.reference
def test_a_released_checkpoint_becomes_a_cell_load_cell_model_reads(tmp_path):
    path, reference = save_smp_checkpoint(tmp_path, "lung-segmentation-Linknet-resnet18-None.pt",
                                          "Linknet", "resnet18")
    bench = tmp_path / "bench"
    (result_file,) = convert_grid(path, bench)
    result = store.read_result(bench, "lungs-linknet-resnet18-random")
    assert result_file == store.result_path(bench, result["id"])
    assert result["status"] == store.RELEASED and result["image_size"] == SIZE
    assert result["config"]["architectures"]["networks"] == "paper"
    assert result["source"]["file"] == path.name and len(result["source"]["sha256"]) == 64
    assert result["parameters"] == sum(p.numel() for p in reference.parameters())

    import torch

    x = np.random.default_rng(0).normal(size=(1, SIZE, SIZE, 1)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    model = load_cell_model(bench, result["id"])
    np.testing.assert_allclose(model(x, training=False).numpy(), expected.transpose(0, 2, 3, 1),
                               atol=1e-5)


@pytest.mark.reference
def test_a_folder_converts_in_one_call_and_parts_given_name_an_odd_file(tmp_path):
    save_smp_checkpoint(tmp_path, "lesion-segmentation-a-Unet-resnet18-imagenet.pt", "Unet", "resnet18")
    save_smp_checkpoint(tmp_path, "model.pt", "FPN", "resnet18")
    odd = convert_grid(tmp_path / "model.pt", tmp_path / "bench", experiment="lesions", arch="fpn",
                       encoder="resnet18", init="random")
    (tmp_path / "model.pt").unlink()
    folder = convert_grid(tmp_path, tmp_path / "bench")
    assert [p.stem for p in odd + folder] == ["lesions-fpn-resnet18-random",
                                              "lesions-unet-resnet18-imagenet"]
    assert all(store.weights_path(tmp_path / "bench", p.stem).is_file() for p in odd + folder)


@pytest.mark.reference
def test_a_checkpoint_whose_keys_do_not_fit_is_refused_before_anything_is_written(tmp_path):
    path, _ = save_smp_checkpoint(tmp_path, "lung-segmentation-Linknet-resnet18-None.pt",
                                  "FPN", "resnet18")
    # layers whose module the checkpoint lacks are listed by their Keras names
    with pytest.raises(WeightsError, match=r"Linknet-resnet18-None\.pt: weights do not fit.*"
                                           r"missing keys \(80\): decoder_blocks_0_block_0_0.weight"
                                           r".*unexpected keys \(29\): decoder.p2.skip_conv.bias"):
        convert_grid(path, tmp_path / "bench")
    assert not (tmp_path / "bench").exists()


def test_convert_grid_command_passes_its_options_to_the_package(tmp_path):
    source = tmp_path / "model.pt"
    source.write_bytes(b"")
    written = [tmp_path / "lungs-unet-vgg11-random.json"]
    with mock.patch.object(released, "convert_grid", autospec=True, return_value=written) as call:
        outcome = CliRunner().invoke(main, ["convert-grid", str(source), "--arch", "unet",
                                            "--encoder", "vgg11", "--init", "random",
                                            "--experiment", "lungs"])
    assert outcome.exit_code == 0, outcome.output
    call.assert_called_once_with(str(source), None, experiment="lungs", arch="unet",
                                 encoder="vgg11", init="random")
    assert "lungs-unet-vgg11-random" in outcome.output


def test_convert_grid_command_reports_a_bad_name_in_one_line(tmp_path):
    source = tmp_path / "weights.pt"
    source.write_bytes(b"")
    outcome = CliRunner().invoke(main, ["convert-grid", str(source), "--out", str(tmp_path / "b")])
    assert outcome.exit_code == 1
    assert "weights.pt: not a released model's name" in outcome.output
    assert len(outcome.output.strip().splitlines()) == 1
