"""ResizeLike and InstanceNorm: PyTorch's behaviour, static shapes, saving without custom objects."""

import numpy as np
import pytest
import tensorflow as tf

from tfcovseg.models.layers import InstanceNorm, ResizeLike


def small_model():
    """A volume resized to a reference's size, then instance-normalised."""
    x = tf.keras.Input((3, 4, 5, 2), name="x")
    reference = tf.keras.Input((None, 7, 6, 1), name="reference")
    y = ResizeLike(name="resize")([x, reference])
    return tf.keras.Model([x, reference], InstanceNorm(name="norm")(y))


def test_resize_like_takes_the_reference_size_statically_where_known():
    model = small_model()
    assert tuple(model.get_layer("resize").output.shape) == (None, None, 7, 6, 2)


@pytest.mark.reference
def test_resize_like_equals_torch_nearest_interpolate(reference):
    import torch
    import torch.nn.functional as F

    x = np.random.default_rng(0).standard_normal((2, 3, 5, 4, 3)).astype(np.float32)
    size = (7, 3, 9)
    got = ResizeLike()([x, np.zeros((1, *size, 1), np.float32)]).numpy()
    want = F.interpolate(torch.from_numpy(x.transpose(0, 4, 1, 2, 3)), size, mode="nearest")
    np.testing.assert_array_equal(got, want.numpy().transpose(0, 2, 3, 4, 1))


def test_instance_norm_normalises_each_sample_and_channel_over_d_h_w():
    x = np.random.default_rng(0).normal(3.0, 2.0, (2, 3, 4, 5, 2)).astype(np.float32)
    layer = InstanceNorm()
    layer.build(x.shape)
    layer.gamma.assign([2.0, 1.0])
    layer.beta.assign([0.5, 0.0])
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    variance = x.var(axis=(1, 2, 3), keepdims=True)
    want = (x - mean) / np.sqrt(variance + 1e-5) * np.array([2.0, 1.0]) + np.array([0.5, 0.0])
    np.testing.assert_allclose(layer(x).numpy(), want, atol=1e-5)


def test_model_with_custom_layers_round_trips_through_keras_file_without_custom_objects(tmp_path):
    model = small_model()
    model.get_layer("norm").gamma.assign([1.5, -1.0])
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal((1, 3, 4, 5, 2)).astype(np.float32), np.zeros((1, 6, 7, 6, 1), np.float32)]
    model.save(tmp_path / "small.keras")
    reloaded = tf.keras.models.load_model(tmp_path / "small.keras")
    np.testing.assert_array_equal(reloaded(inputs).numpy(), model(inputs).numpy())
    assert reloaded.get_layer("norm").epsilon == model.get_layer("norm").epsilon
