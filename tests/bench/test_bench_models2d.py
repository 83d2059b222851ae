import hashlib

import numpy as np
import pytest

from tfcovseg.bench import store
from tfcovseg.bench.cell import save_layer_weights
from tfcovseg.bench.grid import Cell
from tfcovseg.bench.models2d import (
    ImagenetUnavailable,
    build_cell_model,
    check_encoders,
    first_conv_kernel,
    load_cell_model,
    psp_input_size,
    trainable_parameters,
)
from tfcovseg.config import from_dict, to_dict
from tfcovseg.errors import ConfigError, TfcovsegError
from tfcovseg.settings.bench import PAPER_ENCODERS, Architectures, BenchConfig

SIZE = 32
PAPER = Architectures()
SM = Architectures(networks="segmentation_models")
FAMILIES = [pytest.param(PAPER, id="paper"), pytest.param(SM, id="segmentation_models")]
UNET_MOBILENET_V2_SMP = 6_628_369  # smp 0.6.0: sum(p.numel() for p in Unet("mobilenet_v2", in_channels=1).parameters())


def test_psp_input_size_is_the_next_multiple_of_six_times_the_factor():
    assert psp_input_size(512, 8) == 528
    assert psp_input_size(480, 8) == 480
    assert psp_input_size(32, 8) == 48


@pytest.mark.parametrize("settings", FAMILIES)
@pytest.mark.parametrize("arch", ["unet", "linknet", "fpn", "pspnet"])
def test_every_architecture_maps_grey_images_to_probabilities_of_the_same_size(arch, settings):
    model = build_cell_model(Cell("lungs", arch, "resnet18", "random"), settings, SIZE)
    x = np.random.default_rng(0).normal(size=(2, SIZE, SIZE, 1)).astype(np.float32)
    y = model(x, training=False).numpy()
    assert y.shape == (2, SIZE, SIZE, 1)
    assert y.dtype == np.float32
    assert y.min() >= 0.0 and y.max() <= 1.0


def test_paper_family_builds_smps_network_from_the_grids_encoder_name():
    model = build_cell_model(Cell("lungs", "unet", "mobilenetv2", "random"), PAPER, SIZE)
    assert model.name == "unet_mobilenet_v2"
    assert trainable_parameters(model) == UNET_MOBILENET_V2_SMP
    assert first_conv_kernel(model).shape == (3, 3, 1, 32)  # in_channels=1, no grey-to-RGB


def test_paper_family_refuses_a_size_its_architecture_cannot_take():
    with pytest.raises(ConfigError, match="fpn takes H and W divisible by 32.*got 48x48"):
        build_cell_model(Cell("lungs", "fpn", "resnet18", "random"), PAPER, 48)


def test_paper_imagenet_init_sums_the_rgb_stem_over_the_grey_channel(monkeypatch, tmp_path):
    from tfcovseg.models.grid2d.encoders import ENCODERS
    from tfcovseg.models.grid2d.encoders.imagenet import cache_path

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    seeded = ENCODERS["resnet18"].build(weights=None)
    cache_path("resnet18").parent.mkdir(parents=True)
    seeded.save_weights(str(cache_path("resnet18")))
    model = build_cell_model(Cell("lungs", "unet", "resnet18", "imagenet"), PAPER, SIZE)
    rgb = seeded.get_layer("encoder_conv1").kernel.numpy()
    np.testing.assert_allclose(first_conv_kernel(model), rgb.sum(axis=2, keepdims=True), rtol=1e-6)


def test_paper_imagenet_init_without_the_converted_file_is_reported(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(ImagenetUnavailable, match="no converted ImageNet weights for resnext50_32x4d"):
        build_cell_model(Cell("lungs", "unet", "resnext50", "imagenet"), PAPER, SIZE)


def test_segmentation_models_table1_settings_reach_the_model():
    model = build_cell_model(Cell("lungs", "fpn", "resnet18", "random"), SM, SIZE)
    names = {layer.name for layer in model.get_layer("segmentation_model").layers}
    assert "pyramid_dropout" in names  # dropout 0.2
    assert not any("bn" in n for n in names if n.startswith("segm_stage"))  # no BN in FPN
    unet = build_cell_model(Cell("lungs", "unet", "resnet18", "random"), SM, SIZE)
    filters = [layer.filters for layer in unet.get_layer("segmentation_model").layers
               if layer.name.startswith("decoder_stage") and layer.name.endswith("a_conv")]
    assert filters == [256, 128, 64, 32, 16]


def test_segmentation_models_parameters_and_first_filters():
    model = build_cell_model(Cell("lungs", "unet", "resnet18", "random"), SM, SIZE)
    assert 14.0e6 < trainable_parameters(model) < 14.5e6  # smp's Unet-resnet18: 14.3 M
    assert first_conv_kernel(model).shape == (7, 7, 3, 64)


def test_paper_networks_refuse_segmentation_models_settings():
    with pytest.raises(ConfigError, match=r"architectures: fpn_batchnorm is True: these configure "
                                          r"networks: segmentation_models"):
        from_dict(Architectures, {"fpn_batchnorm": True}, "architectures")
    settings = {"networks": "segmentation_models", "fpn_batchnorm": True}
    assert from_dict(Architectures, settings, "architectures").fpn_batchnorm


@pytest.mark.parametrize("networks", ["paper", "segmentation_models"])
def test_unknown_encoder_is_a_clear_error(networks):
    with pytest.raises(TfcovsegError, match=f"unknown encoder.*resnet19 for networks '{networks}'"):
        check_encoders(["resnet18", "resnet19"], networks)


@pytest.mark.parametrize("networks", ["paper", "segmentation_models"])
def test_every_paper_encoder_is_available(networks):
    check_encoders(PAPER_ENCODERS, networks)


def _fail_download(*args, **kwargs):
    # what tf_keras' get_file raises when the network is unreachable
    raise Exception("URL fetch failure on https://example.invalid/w.h5: None -- "
                    "[Errno -2] Name or service not known")


def test_imagenet_offline_is_reported_not_crashed(monkeypatch, tmp_path):
    import tensorflow as tf

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(tf.keras.utils, "get_file", _fail_download)
    with pytest.raises(ImagenetUnavailable, match="no ImageNet weights for resnet18: offline"):
        build_cell_model(Cell("lungs", "unet", "resnet18", "imagenet"), SM, SIZE)


def test_imagenet_weights_are_read_from_a_seeded_keras_cache(monkeypatch, tmp_path):
    """A cache file with the expected name and checksum is loaded without any download."""
    import segmentation_models as sm
    from classification_models import weights as cm_weights

    monkeypatch.setenv("HOME", str(tmp_path))
    cache = tmp_path / ".keras" / "models"
    cache.mkdir(parents=True)
    entry = next(w for w in cm_weights.WEIGHTS_COLLECTION
                 if w["model"] == "resnet18" and not w["include_top"])
    import tensorflow as tf

    keras = {"backend": tf.keras.backend, "layers": tf.keras.layers, "models": tf.keras.models,
             "utils": tf.keras.utils}
    seeded = sm.Backbones.get_backbone("resnet18", input_shape=(None, None, 3), weights=None,
                                       include_top=False, **keras)
    path = cache / entry["name"]
    seeded.save_weights(str(path))
    monkeypatch.setitem(entry, "md5", hashlib.md5(path.read_bytes()).hexdigest())

    model = build_cell_model(Cell("lungs", "unet", "resnet18", "imagenet"), SM, SIZE)
    np.testing.assert_array_equal(first_conv_kernel(model), seeded.get_layer("conv0").kernel.numpy())


def test_extra_encoder_without_converted_imagenet_file_is_reported(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / ".keras"))
    with pytest.raises(ImagenetUnavailable, match="no ImageNet weights for vgg11"):
        build_cell_model(Cell("lungs", "unet", "vgg11", "imagenet"), SM, SIZE)


def test_linknet_uses_smps_transposed_decoder_with_32_final_channels():
    model = build_cell_model(Cell("lungs", "linknet", "resnet18", "random"), SM, SIZE)
    layers = model.get_layer("segmentation_model").layers
    assert any(layer.name == "decoder_stage0b_transpose" for layer in layers)
    assert model.get_layer("segmentation_model").get_layer("decoder_stage4c_conv").filters == 32


@pytest.mark.parametrize("settings", FAMILIES)
def test_load_cell_model_rebuilds_the_family_its_result_records(settings, tmp_path):
    cell = Cell("lungs", "fpn", "resnet18", "random")
    trained = build_cell_model(cell, settings, SIZE)
    save_layer_weights(trained, store.weights_path(tmp_path, cell.id))
    store.write_result(tmp_path, {"id": cell.id, "cell": vars(cell), "status": store.DONE,
                                  "image_size": SIZE,
                                  "config": to_dict(BenchConfig(architectures=settings))})
    x = np.random.default_rng(0).normal(size=(1, SIZE, SIZE, 1)).astype(np.float32)
    loaded = load_cell_model(tmp_path, cell.id)
    assert loaded.name == trained.name
    np.testing.assert_array_equal(loaded(x, training=False).numpy(), trained(x, training=False).numpy())
