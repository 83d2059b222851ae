"""Converting PyTorch weights: faimed3d U-Nets give the reference's logits; bad files, clear errors."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from reference_helpers import channels_last, randomise_batch_norm, torch_input

import tfcovseg
from tfcovseg.models import unet3d
from tfcovseg.models.convert import (
    KINETICS_SHA256_PREFIX,
    KINETICS_URL,
    convert_weights,
    fetch_kinetics_weights,
)

TOLERANCE = 1e-4  # float32 logits, eval mode
MANIFEST = Path(__file__).resolve().parents[2] / "weights" / "manifest.json"


def save_state_dict(module, path):
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(path))
    else:
        torch.save(module.state_dict(), path)


@pytest.mark.reference
@pytest.mark.parametrize("variant, file_name", [
    ({"encoder_norm": True, "summed": False, "norm": "batch"}, "paper_era.pth"),
    ({"encoder_norm": False, "summed": True, "norm": "instance"}, "later.safetensors"),
])
def test_faimed3d_unet_converts_to_keras_with_the_same_logits(reference, tmp_path, variant, file_name):
    import torch

    torch.manual_seed(0)
    torch_model = randomise_batch_norm(reference.DynamicUnet3D(**variant))
    save_state_dict(torch_model, tmp_path / file_name)
    arguments = convert_weights(faimed3d=tmp_path / file_name, out=tmp_path / "unet.h5")
    assert arguments == {"classes": 2, "skip_norm": variant["norm"], "encoder_norm": variant["encoder_norm"],
                         "input_channels": "summed" if variant["summed"] else "tripled"}
    model = unet3d(**arguments)
    model.load_weights(tmp_path / "unet.h5")
    x = np.random.default_rng(0).random((1, 5, 17, 19, 1), dtype=np.float32)
    with torch.no_grad():
        expected = channels_last(torch_model(torch_input(x, torch_model.in_channels)))
    np.testing.assert_allclose(model(x, training=False).numpy(), expected, atol=TOLERANCE, rtol=0)


@pytest.mark.reference
def test_reference_network_has_the_authors_parameter_counts(reference):
    assert reference.parameter_count(reference.DynamicUnet3D(encoder_norm=True)) == 95_372_348
    assert reference.parameter_count(reference.DynamicUnet3D(encoder_norm=False)) == 95_371_324


@pytest.mark.reference
def test_unfitting_torchvision_state_dict_lists_missing_unexpected_and_misshaped_keys(reference, tmp_path):
    import torch
    import torchvision

    state_dict = torchvision.models.video.r3d_18(weights=None).state_dict()
    del state_dict["layer1.0.conv1.0.weight"]
    state_dict["extra.weight"] = torch.zeros(3)
    state_dict["stem.1.weight"] = torch.ones(32)
    torch.save(state_dict, tmp_path / "broken.pth")
    with pytest.raises(tfcovseg.TfcovsegError) as error:
        convert_weights(torchvision=tmp_path / "broken.pth", out=tmp_path / "r3d18.h5")
    message = str(error.value)
    assert "broken.pth" in message
    for problem in ("missing keys (1): layer1.0.conv1.0.weight", "unexpected keys (1): extra.weight",
                    "mis-shaped keys (1): stem.1.weight"):
        assert problem in message
    assert not (tmp_path / "r3d18.h5").exists()


@pytest.mark.reference
def test_state_dict_of_another_network_is_not_taken_for_a_faimed3d_unet(reference, tmp_path):
    import torch

    torch.save({"conv.weight": torch.zeros(4, 3, 3, 3, 3)}, tmp_path / "other.pth")
    with pytest.raises(tfcovseg.TfcovsegError, match="not a faimed3d DynamicUnet3D"):
        convert_weights(faimed3d=tmp_path / "other.pth", out=tmp_path / "unet.h5")


@pytest.mark.parametrize("arguments, problem", [
    ({}, "exactly one"),
    ({"torchvision": "a.pth", "faimed3d": "b.pth"}, "exactly one"),
    ({"torchvision": "a.pth", "out": "r3d18.keras"}, ".h5"),
])
def test_convert_weights_arguments_are_checked(arguments, problem):
    with pytest.raises(tfcovseg.TfcovsegError, match=problem):
        convert_weights(**{"out": "r3d18.h5", **arguments})


def test_cli_reports_an_unreadable_weights_file_in_one_line(tmp_path):
    from tfcovseg.cli import main

    (tmp_path / "garbage.pth").write_bytes(b"not a state_dict")
    result = CliRunner().invoke(main, ["convert-weights", "--torchvision", str(tmp_path / "garbage.pth"),
                                       "--out", str(tmp_path / "r3d18.h5")])
    assert result.exit_code == 1
    assert "garbage.pth" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_fetch_without_internet_says_how_to_get_the_file_by_hand(tmp_path):
    unreachable = "http://127.0.0.1:9/r3d_18-b3b3357e.pth"  # the discard port: connection refused
    with pytest.raises(tfcovseg.TfcovsegError, match="download it by hand"):
        fetch_kinetics_weights(out=tmp_path / "r3d18.h5", url=unreachable, cache_dir=tmp_path)
    assert not (tmp_path / "r3d_18-b3b3357e.pth").exists()


def test_fetch_refuses_a_file_whose_hash_does_not_match(tmp_path):
    (tmp_path / "r3d_18-b3b3357e.pth").write_bytes(b"corrupt")
    with pytest.raises(tfcovseg.TfcovsegError, match="sha256"):
        fetch_kinetics_weights(out=tmp_path / "r3d18.h5", cache_dir=tmp_path)


def test_weights_manifest_names_the_kinetics_source_the_code_downloads():
    entries = {entry["name"]: entry for entry in json.loads(MANIFEST.read_text())["weights"]}
    kinetics = entries["r3d18_kinetics400"]
    assert kinetics["source_url"] == KINETICS_URL
    assert kinetics["sha256_prefix"] == KINETICS_SHA256_PREFIX
    assert "convert-weights --torchvision" in kinetics["command"]
