"""The extra segmentation_models backbones: registration, strides, ImageNet files, and parity with
segmentation_models_pytorch's encoders (the authors' library) under converted random weights."""

import sys

# triton (imported by timm through torch._dynamo) segfaults when loaded after TensorFlow; the CPU
# reference needs none of it, and torch works without it.
sys.modules.setdefault("triton", None)

# isort: off
import functools  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import tfcovseg  # noqa: E402, F401  (must precede TensorFlow: selects tf_keras)
import segmentation_models as sm  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfcovseg.models.grid2d.encoders import ENCODERS  # noqa: E402
from tfcovseg.models.grid2d.encoders import convert  # noqa: E402
from tfcovseg.models.grid2d.encoders.convert import convert_imagenet, load_state_dict, main  # noqa: E402
from tfcovseg.models.grid2d.encoders.densenet import torchvision_keys  # noqa: E402
from tfcovseg.models.grid2d.encoders.imagenet import MissingImagenetWeights, cache_path, source_url  # noqa: E402
from tfcovseg.models.grid2d.encoders.layers import (  # noqa: E402
    ChannelSplit,
    GroupedConv2D,
    TorchMaxPooling2D,
)
from tfcovseg.errors import TfcovsegError  # noqa: E402
# isort: on

STRIDES = (2, 4, 8, 16, 32)
SIZE = 32  # the smallest input every encoder takes: 1x1 at stride 32
# Float32 sums in a different order (oneDNN vs PyTorch): relative to the feature's magnitude.
RELATIVE_TOLERANCE = 1e-4


@functools.cache
def encoder_model(name: str) -> tf.keras.Model:
    """One random-weight build per encoder for the whole module (the big ones take seconds)."""
    return ENCODERS[name].build(input_shape=(None, None, 3), weights=None)


def pyramid(model: tf.keras.Model, name: str) -> tf.keras.Model:
    """The encoder's outputs at strides 2, 4, 8, 16, 32, as the decoders take them."""
    layers = reversed(ENCODERS[name].feature_layers)
    return tf.keras.Model(model.input, [model.get_layer(n).output for n in layers] + [model.output])


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return tmp_path / "keras"


def test_extra_encoders_are_registered_with_segmentation_models():
    for name, encoder in ENCODERS.items():
        assert name in sm.Backbones.models_names()
        assert sm.Backbones.get_feature_layers(name, n=4) == encoder.feature_layers
    assert set(ENCODERS) == {"vgg11", "vgg13", "densenet161", "dpn68", "dpn98", "inceptionv4",
                             "xception"}


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_decoder_features_sit_at_strides_2_to_32(name):
    size = 2 * SIZE
    features = pyramid(encoder_model(name), name)(np.zeros((1, size, size, 3), np.float32))
    assert [f.shape[1:3] for f in features] == [(size // s, size // s) for s in STRIDES]


@pytest.mark.parametrize("architecture", ["Unet", "Linknet", "FPN", "PSPNet"])
def test_every_architecture_builds_on_an_extra_encoder(architecture):
    size = 48 if architecture == "PSPNet" else 64  # PSPNet: a multiple of 6 x downsample factor 8
    model = getattr(sm, architecture)("vgg11", input_shape=(size, size, 3), classes=1,
                                      encoder_weights=None)
    assert model(np.zeros((1, size, size, 3), np.float32)).shape == (1, size, size, 1)


def test_unet_decodes_dpn_features_the_main_path_does_not_consume():
    model = sm.Unet("dpn68", input_shape=(64, 64, 3), classes=1, encoder_weights=None)
    assert model(np.zeros((1, 64, 64, 3), np.float32)).shape == (1, 64, 64, 1)


def test_missing_imagenet_file_names_the_url_and_the_conversion_command(keras_home):
    with pytest.raises(MissingImagenetWeights) as err:
        sm.Unet("dpn68", input_shape=(64, 64, 3), encoder_weights="imagenet")
    message = str(err.value)
    assert str(cache_path("dpn68")).startswith(str(keras_home))
    assert str(cache_path("dpn68")) in message
    assert source_url("dpn68") in message
    assert "python -m tfcovseg.models.grid2d.encoders.convert dpn68" in message


def test_unreadable_weights_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "not_weights.h5"
    bad.write_text("not hdf5")
    with pytest.raises(TfcovsegError, match="not vgg11 weights"):
        ENCODERS["vgg11"].build(weights=str(bad))
    with pytest.raises(TfcovsegError, match="not found"):
        ENCODERS["vgg11"].build(weights=str(tmp_path / "absent.h5"))


def test_imagenet_weights_need_rgb_input_and_no_classifier(keras_home):
    cache_path("vgg11").parent.mkdir(parents=True)
    encoder_model("vgg11").save_weights(str(cache_path("vgg11")))
    with pytest.raises(TfcovsegError, match="need 3 input channels"):
        ENCODERS["vgg11"].build(input_shape=(None, None, 1), weights="imagenet")
    with pytest.raises(TfcovsegError, match="include_top"):
        ENCODERS["vgg11"].build(include_top=True, weights=None)


def test_preprocessing_matches_the_weights_normalisation():
    white = np.full((1, 2, 2, 3), 255.0)
    torchvision = sm.get_preprocessing("densenet161")(white)[0, 0, 0]
    np.testing.assert_allclose(torchvision, (1 - np.array([0.485, 0.456, 0.406])) /
                               np.array([0.229, 0.224, 0.225]), rtol=1e-6)
    assert np.allclose(sm.get_preprocessing("xception")(white), 1.0)


def test_old_torchvision_densenet_keys_are_renamed():
    old = {"features.denseblock1.denselayer1.norm.1.weight": 1,
           "features.denseblock1.denselayer1.conv.2.weight": 2, "features.norm5.bias": 3}
    assert torchvision_keys(old) == {"features.denseblock1.denselayer1.norm1.weight": 1,
                                     "features.denseblock1.denselayer1.conv2.weight": 2,
                                     "features.norm5.bias": 3}


def test_torch_max_pooling_pads_with_minus_infinity_under_bfloat16():
    x = -np.arange(1, 17, dtype=np.float32).reshape(1, 4, 4, 1)  # all negative: zeros would win
    pooled = TorchMaxPooling2D(3, 2, 1, dtype="mixed_bfloat16")(x).numpy().astype(np.float32)
    np.testing.assert_array_equal(pooled[0, ..., 0], [[-1, -2], [-5, -6]])


def test_grouped_conv_equals_keras_grouped_conv_forward_and_backward():
    x = tf.constant(np.random.default_rng(0).standard_normal((1, 6, 6, 8)), tf.float32)
    keras_conv = tf.keras.layers.Conv2D(6, 3, padding="same", groups=2)
    ours = GroupedConv2D(6, 3, padding="same", groups=2)
    keras_conv.build(x.shape)
    ours.build(x.shape)
    ours.set_weights(keras_conv.get_weights())

    def value_and_gradients(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y**2)
        return [y, *tape.gradient(loss, [x, *layer.trainable_weights])]

    for want, got in zip(value_and_gradients(keras_conv), value_and_gradients(ours)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)


def test_channel_split_cuts_at_the_given_sizes():
    first, second = ChannelSplit([2, 3])(np.arange(5, dtype=np.float32).reshape(1, 1, 1, 5))
    assert first.numpy().ravel().tolist() == [0, 1] and second.numpy().ravel().tolist() == [2, 3, 4]


def test_convert_command_usage_and_errors(capsys):
    with pytest.raises(SystemExit):
        main([])
    assert main(["resnet999", "weights.pth"]) == 1
    assert "unknown encoder 'resnet999'" in capsys.readouterr().err


def test_failed_download_names_the_url_and_the_offline_route(tmp_path, monkeypatch):
    url = (tmp_path / "absent.safetensors").as_uri()
    monkeypatch.setattr(convert, "source_url", lambda name: url)
    with pytest.raises(TfcovsegError, match="could not download") as err:
        convert.fetch_imagenet("vgg11", tmp_path / "out.h5")
    assert url in str(err.value) and "convert vgg11 FILE" in str(err.value)
    assert list(tmp_path.iterdir()) == []


# ---- parity with the PyTorch reference (the `reference` extra) ---------------------------------

def _torch():
    torch = pytest.importorskip("torch")
    smp = pytest.importorskip("segmentation_models_pytorch")
    return torch, smp


def randomise_batch_norm(module, torch, seed=1):
    """Non-trivial BN statistics and affine parameters (fresh ones are mean 0, var 1)."""
    generator = torch.Generator().manual_seed(seed)
    for bn in module.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            n = bn.num_features
            bn.running_mean.copy_(torch.rand(n, generator=generator) * 0.2 - 0.1)
            bn.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            bn.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            bn.bias.data.copy_(torch.rand(n, generator=generator) * 0.2 - 0.1)


def numpy_state_dict(module) -> dict:
    return {k: v.numpy() for k, v in module.state_dict().items()
            if not k.endswith("num_batches_tracked")}


@pytest.mark.reference
@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_converted_weights_reproduce_smp_encoder_at_every_stride(name):
    torch, smp = _torch()
    torch.manual_seed(0)
    reference = smp.encoders.get_encoder(name, weights=None).eval()
    randomise_batch_norm(reference, torch)
    model = encoder_model(name)
    load_state_dict(model, name, numpy_state_dict(reference))

    x = np.random.default_rng(0).standard_normal((1, SIZE, SIZE, 3)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x.transpose(0, 3, 1, 2)))[1:]
    for stride, got, want in zip(STRIDES, pyramid(model, name)(x), expected):
        want = want.numpy().transpose(0, 2, 3, 1)
        assert got.shape == want.shape, f"stride {stride}"
        scale = max(1.0, float(np.abs(want).max()))
        assert np.abs(got.numpy() - want).max() <= RELATIVE_TOLERANCE * scale, f"stride {stride}"


def vgg11_reference(torch, smp):
    """smp's vgg11 encoder (torchvision's VGG) and its state_dict with a small stand-in for the
    classifier the ImageNet file carries (the real one has 120 M parameters)."""
    torch.manual_seed(0)
    reference = smp.encoders.get_encoder("vgg11", weights=None).eval()
    state_dict = {**reference.state_dict(), "classifier.0.weight": torch.zeros(4, 8),
                  "classifier.0.bias": torch.zeros(4)}
    return reference, state_dict


@pytest.mark.reference
def test_downloaded_safetensors_convert_into_the_cache_that_imagenet_loads(
        tmp_path, keras_home, monkeypatch):
    torch, smp = _torch()
    safetensors = pytest.importorskip("safetensors.torch")
    reference, state_dict = vgg11_reference(torch, smp)
    safetensors.save_file(state_dict, tmp_path / "model.safetensors")
    monkeypatch.setattr(convert, "source_url", lambda name: (tmp_path / "model.safetensors").as_uri())

    assert convert.fetch_imagenet("vgg11") == cache_path("vgg11")
    assert sorted(p.name for p in cache_path("vgg11").parent.iterdir()) == [cache_path("vgg11").name]
    model = ENCODERS["vgg11"].build(input_shape=(SIZE, SIZE, 3), weights="imagenet")
    x = np.random.default_rng(0).standard_normal((1, SIZE, SIZE, 3)).astype(np.float32)
    with torch.no_grad():
        want = reference(torch.from_numpy(x.transpose(0, 3, 1, 2)))[-1].numpy()
    np.testing.assert_allclose(model(x).numpy(), want.transpose(0, 2, 3, 1), atol=1e-5)


@pytest.mark.reference
def test_conversion_lists_missing_and_unexpected_keys(tmp_path):
    torch, smp = _torch()
    _, state_dict = vgg11_reference(torch, smp)
    state_dict["features.99.weight"] = state_dict.pop("features.0.weight")
    torch.save(state_dict, tmp_path / "broken.pth")
    with pytest.raises(TfcovsegError) as err:
        convert_imagenet("vgg11", tmp_path / "broken.pth", tmp_path / "out.h5")
    assert "missing keys (1): features.0.weight" in str(err.value)
    assert "unexpected keys (1): features.99.weight" in str(err.value)
    assert not (tmp_path / "out.h5").exists()
