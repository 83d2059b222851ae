"""R3D-18 in Keras computes what torchvision's r3d_18 computes, after weight conversion."""

import numpy as np
import pytest
from reference_helpers import channels_last, randomise_batch_norm, torch_input

import tfcovseg  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from tfcovseg.models import r3d18, unet3d
from tfcovseg.models.r3d18 import STAGES, STEM_CONV, transfer_encoder

TOLERANCE = 1e-4  # float32, eval mode
SIZES = [(5, 17, 19), (9, 33, 31), (18, 112, 112)]


@pytest.fixture(scope="module")
def torchvision_r3d18(reference, tmp_path_factory):
    """A seeded torchvision r3d_18 with random BN statistics, the converted file, its Keras model."""
    import torch
    import torchvision

    from tfcovseg.models.convert import convert_weights

    torch.manual_seed(0)
    model = randomise_batch_norm(torchvision.models.video.r3d_18(weights=None))
    folder = tmp_path_factory.mktemp("r3d18")
    torch.save(model.state_dict(), folder / "r3d_18.pth")
    convert_weights(torchvision=folder / "r3d_18.pth", out=folder / "r3d18.h5")
    return model, folder / "r3d18.h5", r3d18(weights=folder / "r3d18.h5")


def torch_stages(model, x):
    import torch

    outputs = []
    with torch.no_grad():
        for stage in (model.stem, model.layer1, model.layer2, model.layer3, model.layer4):
            x = stage(x)
            outputs.append(channels_last(x))
    return outputs


@pytest.mark.reference
@pytest.mark.parametrize("size", SIZES, ids=lambda s: "x".join(map(str, s)))
def test_r3d18_stages_equal_torchvision_for_odd_and_even_sizes(torchvision_r3d18, size):
    model, _, keras_model = torchvision_r3d18
    x = np.random.default_rng(1).standard_normal((1, *size, 1)).astype(np.float32)
    expected = torch_stages(model, torch_input(x, 3))
    got = keras_model(np.repeat(x, 3, axis=-1), training=False)
    for stage, want, have in zip(STAGES, expected, got):
        assert have.shape == want.shape, stage
        np.testing.assert_allclose(have.numpy(), want, atol=TOLERANCE, rtol=0, err_msg=stage)


@pytest.mark.reference
def test_unet_encoder_weights_fill_the_encoder_with_rgb_kernels_summed_for_a_grey_stem(torchvision_r3d18):
    _, weights, encoder = torchvision_r3d18
    model = unet3d(encoder_weights=str(weights), input_channels="summed")
    stem = encoder.get_layer(STEM_CONV).kernel.numpy()
    np.testing.assert_allclose(model.get_layer(STEM_CONV).kernel.numpy(), stem.sum(axis=-2, keepdims=True), rtol=1e-6)
    for name in ("encoder_layer3_0_conv1", "encoder_layer4_1_bn2"):
        for got, want in zip(model.get_layer(name).get_weights(), encoder.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want)


def test_grey_stem_with_summed_kernels_equals_rgb_stem_on_repeated_grey():
    rgb = r3d18()
    grey = r3d18(input_shape=(None, None, None, 1))
    transfer_encoder(rgb, grey)
    x = np.random.default_rng(2).standard_normal((1, 5, 17, 19, 1)).astype(np.float32)
    expected = rgb(np.repeat(x, 3, axis=-1), training=False)
    got = grey(x, training=False)
    for stage, want, have in zip(STAGES, expected, got):
        np.testing.assert_allclose(have.numpy(), want.numpy(), atol=TOLERANCE, rtol=0, err_msg=stage)


def test_r3d18_outputs_stem_and_four_stages_with_torchvision_shapes():
    model = r3d18(input_shape=(18, 112, 112, 3))
    shapes = [tuple(output.shape[1:]) for output in model.outputs]
    assert shapes == [(18, 56, 56, 64), (18, 56, 56, 64), (9, 28, 28, 128), (5, 14, 14, 256), (3, 7, 7, 512)]
    assert model.count_params() - sum(int(np.prod(w.shape)) for w in model.non_trainable_weights) == 33_166_272


def test_r3d18_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(tfcovseg.TfcovsegError, match="not found"):
        r3d18(weights=tmp_path / "nothing.h5")
