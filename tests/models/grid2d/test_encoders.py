"""The 25 grid encoders: smp's features and layout (parity with segmentation_models_pytorch 0.6.0
under converted random weights, one input channel), the library-version settings, weights
conversion, ImageNet files, and the segmentation_models registration.

Parity tests (marked ``reference``, they need torch and smp) run every encoder; the heavy ones
(``SLOW``: resnet101/152, densenet161/169/201, dpn98, inceptionv4, xception, efficientnet-b4..b6)
are marked ``heavy`` and run only with ``--heavy``. The quick set (what README's test line
runs)::

    pytest tests/models/grid2d/test_encoders.py

and everything::

    pytest tests/models/grid2d/test_encoders.py --heavy
"""

import sys

# triton (imported by timm through torch._dynamo) segfaults when loaded after TensorFlow; the CPU
# reference needs none of it, and torch works without it.
sys.modules.setdefault("triton", None)

# isort: off
import functools  # noqa: E402
import types  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import tfcovseg  # noqa: E402, F401  (must precede TensorFlow: selects tf_keras)
import segmentation_models as sm  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfcovseg.errors import TfcovsegError, WeightsError  # noqa: E402
from tfcovseg.models.grid2d.encoders import (  # noqa: E402
    ENCODERS,
    SEGMENTATION_MODELS_LACKS,
    convert,
    encoder_graph,
    encoder_model,
    get_encoder,
)
from tfcovseg.models.grid2d.encoders.convert import (  # noqa: E402
    convert_imagenet,
    load_encoder_state_dict,
    main,
)
from tfcovseg.models.grid2d.encoders.densenet import torchvision_keys  # noqa: E402
from tfcovseg.models.grid2d.encoders.efficientnet import static_same_padding  # noqa: E402
from tfcovseg.models.grid2d.encoders.imagenet import (  # noqa: E402
    MissingImagenetWeights,
    cache_path,
    source_url,
)
from tfcovseg.models.grid2d.encoders.layers import (  # noqa: E402
    ChannelSplit,
    GroupedConv2D,
    TorchMaxPooling2D,
    layer_name,
)
from tfcovseg.settings.grid2d import Encoders  # noqa: E402
# isort: on

SIZE = 64  # 2x2 at stride 32
STRIDES = (1, 2, 4, 8, 16, 32)
# Float32 sums in a different order (oneDNN vs PyTorch): the largest difference over the
# largest reference value, at every stride.
RELATIVE_TOLERANCE = 1e-4
SMP_060 = Encoders(efficientnet_padding="native_static", xception_forward="fixed")
SLOW = {"resnet101", "resnet152", "densenet161", "densenet169", "densenet201", "dpn98",
        "inceptionv4", "xception", "efficientnet-b4", "efficientnet-b5", "efficientnet-b6"}
PAPER_ENCODERS = ("vgg11", "vgg13", "vgg19", "resnet18", "resnet34", "resnet50", "resnet101",
                  "resnet152", "densenet121", "densenet161", "densenet169", "densenet201",
                  "resnext50_32x4d", "dpn68", "dpn98", "mobilenet_v2", "xception", "inceptionv4",
                  *(f"efficientnet-b{i}" for i in range(7)))


def by_weight(names):
    return [pytest.param(n, id=n, marks=[pytest.mark.heavy] if n in SLOW else []) for n in names]


@functools.cache
def grey_model(name: str, settings: Encoders = SMP_060) -> tf.keras.Model:
    """One random-weight build per encoder and settings for the whole module."""
    return encoder_model(name, (SIZE, SIZE, 1), settings)


def grey_image(seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1, SIZE, SIZE, 1)).astype(np.float32)


def trainable_count(model) -> int:
    """PyTorch's parameter count: Keras also counts BN moving statistics, torch's buffers."""
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return tmp_path / "keras"


def test_the_paper_encoders_are_all_there():
    assert sorted(ENCODERS) == sorted(PAPER_ENCODERS)


def test_segmentation_models_gains_only_the_encoders_it_lacks():
    for name in SEGMENTATION_MODELS_LACKS:
        assert sm.Backbones.get_feature_layers(name, n=4) == ENCODERS[name].feature_layers
    assert set(SEGMENTATION_MODELS_LACKS) <= set(sm.Backbones.models_names())
    keras = {"backend": tf.keras.backend, "layers": tf.keras.layers, "models": tf.keras.models,
             "utils": tf.keras.utils}
    sm_resnet = sm.Backbones.get_backbone("resnet18", input_shape=(32, 32, 3), weights=None,
                                          include_top=False, **keras)
    assert sm_resnet.get_layer("bn_data")  # classification_models' net, not torchvision's


@pytest.mark.parametrize("name", by_weight(PAPER_ENCODERS))
def test_features_sit_at_strides_1_to_32(name):
    features = grey_model(name)(grey_image())
    assert [f.shape[1:3] for f in features] == [(SIZE // s, SIZE // s) for s in STRIDES]


def test_every_weighted_layer_is_named_after_an_smp_module_path():
    model = grey_model("mobilenet_v2")
    names = [layer.name for layer in model.layers if layer.weights]
    assert names[:3] == ["encoder_features_0_0", "encoder_features_0_1", "encoder_features_1_conv_0_0"]
    assert all(name.startswith("encoder_") for name in names)
    assert layer_name("encoder._blocks.3._depthwise_conv") == "encoder__blocks_3__depthwise_conv"


def test_depth_3_stops_the_features_but_keeps_every_layer():
    inputs = tf.keras.Input((SIZE, SIZE, 1))
    features, channels = encoder_graph("resnet18", inputs, depth=3)
    model = tf.keras.Model(inputs, features)
    assert channels == (1, 64, 64, 128)
    assert [f.shape[1] for f in model(grey_image())] == [64, 32, 16, 8]
    assert trainable_count(model) == trainable_count(grey_model("resnet18"))


def test_an_encoder_depth_outside_1_to_5_is_refused():
    with pytest.raises(TfcovsegError, match="depth 6; allowed: 1 to 5"):
        encoder_graph("resnet18", tf.keras.Input((SIZE, SIZE, 1)), depth=6)


def test_unknown_encoder_lists_the_known_ones():
    with pytest.raises(TfcovsegError, match="unknown encoder 'resnet999'; available: vgg11, vgg13"):
        get_encoder("resnet999")


@pytest.mark.parametrize(("kernel", "stride", "size", "regime", "expected"), [
    pytest.param(3, 2, 112, "tf_same", (0, 1), id="k3-even-tf"),
    pytest.param(5, 2, 56, "native_static", (1, 2), id="k5-even-native"),
    pytest.param(5, 2, 15, "native_static", (2, 2), id="k5-odd-native"),
    pytest.param(3, 2, 112, "symmetric", (1, 1), id="k3-even-symmetric"),
    pytest.param(5, 2, 56, "symmetric", (2, 2), id="k5-even-symmetric"),
    pytest.param(5, 1, 56, "tf_same", (2, 2), id="k5-stride1"),
    pytest.param(1, 1, 7, "native_static", (0, 0), id="pointwise"),
])
def test_efficientnet_static_same_padding(kernel, stride, size, regime, expected):
    assert static_same_padding(kernel, stride, size, regime) == expected


def test_encoder_settings_refuse_unknown_library_versions():
    with pytest.raises(ValueError, match="efficientnet_padding is 'dynamic'; allowed values: 'tf_"):
        Encoders(efficientnet_padding="dynamic")
    with pytest.raises(ValueError, match="xception_forward is '0.1.0'"):
        Encoders(xception_forward="0.1.0")


def test_efficientnet_padding_regimes_agree_on_b0_only():
    """0.6.3 and 0.7.1 pad alike where every layer's native size is even (b0 at 224); b1's
    last stride-2 convolution sees 15 pixels at 240 and pads (2, 2) in 0.7.1, not (1, 2)."""
    x = grey_image()
    for name, same in (("efficientnet-b0", True), ("efficientnet-b1", False)):
        tf_same = grey_model(name, Encoders(efficientnet_padding="tf_same"))
        native = grey_model(name, SMP_060)
        native.set_weights(tf_same.get_weights())
        want = native(x)[-1].numpy()
        error = np.abs(tf_same(x)[-1].numpy() - want).max() / np.abs(want).max()
        assert (error < RELATIVE_TOLERANCE) == same, f"{name}: relative difference {error:.2e}"


def test_custom_layers_survive_save_and_reload(tmp_path):
    model = grey_model("dpn68")  # GroupedConv2D, ChannelSplit, FeatureTap, TorchMaxPooling2D
    model.save(tmp_path / "dpn68.keras")
    reloaded = tf.keras.models.load_model(tmp_path / "dpn68.keras")
    for got, want in zip(reloaded(grey_image()), model(grey_image())):
        np.testing.assert_array_equal(got.numpy(), want.numpy())


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
    with pytest.raises(TfcovsegError, match="include_top"):
        ENCODERS["vgg11"].build(include_top=True, weights=None)


def test_imagenet_weights_on_grey_input_sum_the_rgb_kernel(keras_home):
    rgb = ENCODERS["resnet18"].build(input_shape=(None, None, 3), weights=None)
    cache_path("resnet18").parent.mkdir(parents=True)
    rgb.save_weights(str(cache_path("resnet18")))
    grey = ENCODERS["resnet18"].build(input_shape=(None, None, 1), weights="imagenet")
    stem = "encoder_conv1"
    np.testing.assert_allclose(grey.get_layer(stem).kernel.numpy(),
                               rgb.get_layer(stem).kernel.numpy().sum(axis=2, keepdims=True))
    np.testing.assert_array_equal(grey.get_layer("encoder_layer4_1_bn2").moving_variance.numpy(),
                                  rgb.get_layer("encoder_layer4_1_bn2").moving_variance.numpy())


def test_weights_for_a_model_without_the_encoder_are_refused(keras_home, tmp_path):
    ENCODERS["vgg11"].build(weights=None).save_weights(str(tmp_path / "vgg11.h5"))
    with pytest.raises(WeightsError, match="does not hold vgg11: encoder_features_0 missing"):
        ENCODERS["vgg11"].load_weights(grey_model("resnet18"), tmp_path / "vgg11.h5")


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
            bn.weight.data.copy_(torch.rand(n, generator=generator) * 0.5 + 0.75)
            bn.bias.data.copy_(torch.rand(n, generator=generator) * 0.2 - 0.1)
    return module


def smp_encoder(name, in_channels=1, depth=5):
    torch, smp = _torch()
    torch.manual_seed(0)
    encoder = smp.encoders.get_encoder(name, in_channels=in_channels, depth=depth, weights=None)
    return randomise_batch_norm(encoder, torch).eval()


def numpy_state_dict(module) -> dict:
    return {k: v.numpy() for k, v in module.state_dict().items()
            if not k.endswith("num_batches_tracked")}


def assert_same_features(model, reference, x):
    torch, _ = _torch()
    with torch.no_grad():
        expected = reference(torch.from_numpy(x.transpose(0, 3, 1, 2)))
    got = model(x)
    assert len(got) == len(expected)
    for stride, have, want in zip(STRIDES, got, expected):
        want = want.numpy().transpose(0, 2, 3, 1)
        assert have.shape == want.shape, f"stride {stride}"
        error = np.abs(have.numpy() - want).max() / np.abs(want).max()
        assert error <= RELATIVE_TOLERANCE, f"stride {stride}: relative error {error:.2e}"


@pytest.mark.reference
@pytest.mark.parametrize("name", by_weight(PAPER_ENCODERS))
def test_converted_weights_reproduce_smp_encoder_at_every_stride(name):
    reference = smp_encoder(name)
    model = grey_model(name)
    load_encoder_state_dict(model, name, numpy_state_dict(reference))
    assert_same_features(model, reference, grey_image())
    assert trainable_count(model) == sum(p.numel() for p in reference.parameters())
    assert encoder_graph(name, tf.keras.Input((SIZE, SIZE, 1)), SMP_060).out_channels == \
        tuple(reference.out_channels)


@pytest.mark.reference
@pytest.mark.parametrize("regime", ["tf_same", "symmetric"])
def test_efficientnet_padding_regimes_reproduce_their_efficientnet_pytorch(regime):
    """smp 0.6.0 with its static paddings replaced as efficientnet_pytorch 0.6.3 computed them
    (TF "SAME" at the even native image size for every layer: (k // 2 - 1, k // 2) at stride 2)
    or 0.7.0 (k // 2 on each side)."""
    torch, _ = _torch()
    reference = smp_encoder("efficientnet-b1")
    for conv in reference.modules():
        if isinstance(conv, torch.nn.Conv2d) and hasattr(conv, "static_padding"):
            (kernel, _), (stride, _) = conv.kernel_size, conv.stride
            before = kernel // 2 - 1 if regime == "tf_same" and stride == 2 else kernel // 2
            conv.static_padding = torch.nn.ZeroPad2d((before, kernel // 2, before, kernel // 2))
    model = grey_model("efficientnet-b1", Encoders(efficientnet_padding=regime))
    load_encoder_state_dict(model, "efficientnet-b1", numpy_state_dict(reference))
    assert_same_features(model, reference, grey_image())


def smp_010_xception_forward(self, inputs):
    """smp 0.1.0's XceptionEncoder.forward: block12 takes block10's output."""
    stem = self.relu2(self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(inputs))))))
    x1 = self.block1(stem)
    x = x2 = self.block2(x1)
    for index in range(3, 11):
        x = getattr(self, f"block{index}")(x)
    x3 = self.block11(x)
    x4 = self.bn4(self.conv4(self.relu3(self.bn3(self.conv3(self.block12(x))))))
    return [inputs, stem, x1, x2, x3, x4]


@pytest.mark.reference
@pytest.mark.heavy
def test_xception_smp_010_forward_reproduces_the_released_models_encoder():
    reference = smp_encoder("xception")
    reference.forward = types.MethodType(smp_010_xception_forward, reference)
    model = grey_model("xception", Encoders(xception_forward="smp_0.1.0"))
    load_encoder_state_dict(model, "xception", numpy_state_dict(reference))
    assert_same_features(model, reference, grey_image())
    assert trainable_count(model) == sum(p.numel() for p in reference.parameters())


@pytest.mark.reference
def test_rgb_imagenet_state_dict_is_summed_into_the_grey_first_convolution():
    """smp's ``set_in_channels(1, pretrained=True)``: the ImageNet kernel summed over RGB."""
    rgb = smp_encoder("resnet18", in_channels=3)
    state_dict = numpy_state_dict(rgb)
    rgb.set_in_channels(1, pretrained=True)
    model = grey_model("resnet18")
    load_encoder_state_dict(model, "resnet18", state_dict)
    assert_same_features(model, rgb, grey_image())


@pytest.mark.reference
def test_depth_3_features_reproduce_a_pspnet_encoder():
    reference = smp_encoder("resnet18", depth=3)
    inputs = tf.keras.Input((SIZE, SIZE, 1))
    model = tf.keras.Model(inputs, encoder_graph("resnet18", inputs, depth=3).features)
    load_encoder_state_dict(model, "resnet18", numpy_state_dict(reference))
    assert_same_features(model, reference, grey_image())


def vgg11_reference():
    """smp's vgg11 encoder (torchvision's VGG, RGB) and its state_dict with a small stand-in for
    the classifier the ImageNet file carries (the real one has 120 M parameters)."""
    torch, _ = _torch()
    reference = smp_encoder("vgg11", in_channels=3)
    state_dict = {**reference.state_dict(), "classifier.0.weight": torch.zeros(4, 8),
                  "classifier.0.bias": torch.zeros(4)}
    return reference, state_dict


@pytest.mark.reference
def test_downloaded_safetensors_convert_into_the_cache_that_imagenet_loads(
        tmp_path, keras_home, monkeypatch):
    torch, _ = _torch()
    safetensors = pytest.importorskip("safetensors.torch")
    reference, state_dict = vgg11_reference()
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
def test_conversion_lists_missing_unexpected_and_misshaped_keys(tmp_path):
    torch, _ = _torch()
    _, state_dict = vgg11_reference()
    state_dict["features.99.weight"] = state_dict.pop("features.0.weight")
    state_dict["features.3.bias"] = torch.zeros(7)
    torch.save(state_dict, tmp_path / "broken.pth")
    with pytest.raises(WeightsError) as err:
        convert_imagenet("vgg11", tmp_path / "broken.pth", tmp_path / "out.h5")
    assert "missing keys (1): encoder.features.0.weight" in str(err.value)
    assert "unexpected keys (1): encoder.features.99.weight" in str(err.value)
    assert "mis-shaped keys (1): encoder.features.3.bias: (7,)" in str(err.value)
    assert not (tmp_path / "out.h5").exists()
