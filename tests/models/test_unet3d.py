"""The Keras 3D U-Net is faimed3d's DynamicUnet3D: counts, shapes, precision, saving, freezing."""

import numpy as np
import pytest
import tensorflow as tf
from reference_helpers import trainable_count

import tfcovseg
from tfcovseg.models import encoder_layers, freeze_encoder, unet3d, unfreeze_encoder

TINY = (4, 16, 16)  # the smallest volumes worth a forward pass: every stage keeps a voxel


def tiny_volume(seed=0, batch=1):
    return np.random.default_rng(seed).random((batch, *TINY, 1), dtype=np.float32)


@pytest.fixture(scope="module")
def paper_unet():
    tf.keras.backend.clear_session()
    return unet3d(input_shape=(18, 112, 112, 1))


def test_paper_era_unet_has_the_authors_95372348_parameters(paper_unet):
    assert trainable_count(paper_unet) == 95_372_348


def test_unet_without_bridge_norm_on_a_tripled_stem_has_95371324_parameters():
    # a combination faimed3d never builds: its later version also sums the stem to 1 channel
    assert trainable_count(unet3d(encoder_norm=False)) == 95_371_324


# PAPERS.md section 1, the DynamicUnet3D table at 18x112x112.
STAGE_SHAPES_18x112 = {
    "encoder_stem_relu": (18, 56, 56, 64),
    "encoder_layer1_1_relu": (18, 56, 56, 64),
    "encoder_layer2_1_relu": (9, 28, 28, 128),
    "encoder_layer3_1_relu": (5, 14, 14, 256),
    "encoder_layer4_1_relu": (3, 7, 7, 512),
    "middle_conv2_relu": (3, 7, 7, 512),
    "decoder_block1_up": (5, 9, 9, 256),
    "decoder_block1_resize": (5, 14, 14, 256),
    "decoder_block1_concat": (5, 14, 14, 512),
    "decoder_block1_conv2_relu": (5, 14, 14, 512),
    "decoder_block2_concat": (9, 28, 28, 384),
    "decoder_block2_conv2_relu": (9, 28, 28, 384),
    "decoder_block3_up": (11, 30, 30, 192),
    "decoder_block3_concat": (18, 56, 56, 256),
    "decoder_block3_conv2_relu": (18, 56, 56, 128),
    "head_up": (20, 58, 58, 128),
    "head_resize": (18, 112, 112, 128),
    "head_concat": (18, 112, 112, 131),
    "head_res_relu": (18, 112, 112, 131),
    "logits": (18, 112, 112, 2),
}


def test_every_stage_has_the_papers_shape_at_18x112x112(paper_unet):
    shapes = {name: tuple(paper_unet.get_layer(name).output.shape[1:]) for name in STAGE_SHAPES_18x112}
    assert shapes == STAGE_SHAPES_18x112


def test_stage_two_size_20x256x256_keeps_the_input_size_with_odd_encoder_depths():
    model = unet3d(input_shape=(20, 256, 256, 1))
    assert tuple(model.get_layer("encoder_stem_relu").output.shape[1:4]) == (20, 128, 128)
    assert tuple(model.get_layer("encoder_layer4_1_relu").output.shape[1:4]) == (3, 16, 16)
    assert tuple(model.output.shape[1:]) == (20, 256, 256, 2)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_unet_builds_under_each_precision_and_gives_finite_float32_logits(policy):
    tf.keras.backend.clear_session()
    tf.keras.mixed_precision.set_global_policy(policy)
    try:
        model = unet3d(skip_norm="instance")
        logits = model(tiny_volume(), training=False)
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    assert logits.dtype == tf.float32
    assert logits.shape == (1, *TINY, 2)
    assert np.isfinite(logits.numpy()).all()


def test_unet_config_and_h5_weights_load_back_without_custom_objects(tmp_path):
    # The full-model .keras round trip of the custom layers is in test_layers.py: loading a
    # 380 MB .keras archive takes over a minute (tf_keras reads the weights through zipfile).
    tf.keras.backend.clear_session()
    model = unet3d(skip_norm="instance")
    x = tiny_volume()
    expected = model(x, training=False).numpy()
    model.save_weights(tmp_path / "unet.weights.h5")
    rebuilt = tf.keras.models.model_from_json(model.to_json())
    rebuilt.load_weights(tmp_path / "unet.weights.h5")
    np.testing.assert_array_equal(rebuilt(x, training=False).numpy(), expected)


def test_frozen_encoder_keeps_conv_kernels_while_bn_learns_and_tracks_statistics():
    tf.keras.backend.clear_session()
    model = unet3d()
    freeze_encoder(model)
    model.compile(optimizer=tf.keras.optimizers.SGD(0.1),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    watched = {
        "encoder_layer2_0_conv1": "kernel",
        "encoder_layer2_0_bn1": "moving_mean",
        "encoder_stem_bn": "gamma",
        "middle_conv1": "kernel",
    }
    before = {name: getattr(model.get_layer(name), attr).numpy().copy() for name, attr in watched.items()}
    labels = (tiny_volume(seed=1, batch=2)[..., 0] > 0.5).astype(np.int32)
    model.train_on_batch(tiny_volume(batch=2), labels)
    changed = {name: not np.array_equal(getattr(model.get_layer(name), attr).numpy(), before[name])
               for name, attr in watched.items()}
    assert changed == {"encoder_layer2_0_conv1": False, "encoder_layer2_0_bn1": True,
                       "encoder_stem_bn": True, "middle_conv1": True}


def test_freeze_without_bn_and_unfreeze_switch_every_encoder_layer():
    model = unet3d()
    encoder = encoder_layers(model)
    assert encoder and all(layer.name.startswith("encoder_") for layer in encoder)
    assert not any(layer.name.startswith("encoder_") for layer in model.layers if layer not in encoder)
    freeze_encoder(model, keep_bn_trainable=False)
    assert not any(layer.trainable for layer in encoder)
    assert trainable_count(model) == 95_372_348 - 33_166_272
    unfreeze_encoder(model)
    assert all(layer.trainable for layer in encoder)
    assert trainable_count(model) == 95_372_348


def test_lesion_prior_starts_the_untrained_network_on_mostly_background():
    x = np.random.default_rng(0).random((2, 8, 32, 32, 1), dtype=np.float32)

    def lesion_share(**arguments):
        tf.keras.utils.set_random_seed(0)
        model = unet3d(**arguments)
        return float(np.mean(np.argmax(model(x, training=True).numpy(), axis=-1) == 1)), model

    authors, _ = lesion_share()
    prior, model = lesion_share(lesion_prior=0.01)
    offsets = model.get_layer("logits").beta.numpy()
    np.testing.assert_allclose(tf.nn.softmax(offsets).numpy(), [0.99, 0.01], rtol=1e-6)
    assert 0.3 < authors < 0.7 and prior < 0.05


def test_width_halves_every_encoder_and_decoder_conv_and_keeps_the_output():
    full, half = unet3d(), unet3d(width=0.5)
    convs = [layer.name for layer in full.layers
             if isinstance(layer, tf.keras.layers.Conv3D) and not layer.name.startswith("head_")]
    assert len(convs) > 30
    for name in convs:
        assert half.get_layer(name).filters * 2 == full.get_layer(name).filters, name
    assert half(tiny_volume(), training=False).shape == (1, *TINY, 2)
    assert trainable_count(half) < trainable_count(full) / 3.5


@pytest.mark.parametrize("arguments", [
    {"input_shape": (None, None, None, 3)},
    {"width": 0.0},
    {"width": 0.5, "encoder_weights": "r3d18.weights.h5"},
    {"lesion_prior": 1.0},
    {"skip_norm": "group"},
    {"input_channels": "rgb"},
])
def test_bad_unet_arguments_are_clear_errors(arguments):
    with pytest.raises(tfcovseg.TfcovsegError, match="|".join(k for k in arguments)):
        unet3d(**arguments)
