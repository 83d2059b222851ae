"""The paper's networks (``paper_network``): segmentation_models_pytorch 0.6.0's Unet, Linknet,
FPN and PSPNet on the 25 encoders, their layers, input-size rule, weight conversion and
parameter counts.

Parity (marked ``reference``: torch and smp): smp's model with random weights and randomised
normalisation (eval mode), its state_dict converted, the Keras forward pass on a 1x1x64x64 input
within a relative max-abs error of 1e-4 (float32) on the logits, the sigmoid's input (the
probabilities saturate: see ``benchmarks/grid_parity.py``), and the parameter counts equal to
smp's. ``benchmarks/grid_parity.py`` does the comparison (and prints README's
table). By default one pair per architecture, light encoders (``REPRESENTATIVE``); all 100
pairs, and the paper's Table 2 counts of the large encoders, are marked ``heavy`` and run only
with ``--heavy`` (about 15 minutes on 2 cores)::

    pytest tests/models/grid2d/test_networks.py                   # the quick set, ~1 min
    pytest tests/models/grid2d/test_networks.py --heavy           # all 100 pairs too
"""

import itertools
import sys

# triton (imported by timm through torch._dynamo) segfaults when loaded after TensorFlow
sys.modules.setdefault("triton", None)

# isort: off
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import tfcovseg  # noqa: E402, F401  (must precede TensorFlow: selects tf_keras)
import tensorflow as tf  # noqa: E402

from tfcovseg.bench.models2d import trainable_parameters  # noqa: E402
from tfcovseg.errors import ConfigError, WeightsError  # noqa: E402
from tfcovseg.models.grid2d.convert import load_smp_state_dict, module_paths  # noqa: E402
from tfcovseg.models.grid2d.encoders import ENCODERS  # noqa: E402
from tfcovseg.models.grid2d.layers2d import (  # noqa: E402
    AdaptiveAveragePooling2D,
    BilinearResizeLike,
    BilinearUpsampling2D,
)
from tfcovseg.models.grid2d.networks import ARCHITECTURES, paper_network  # noqa: E402
# isort: on

SIZE = 64
REPRESENTATIVE = [("unet", "vgg11"), ("linknet", "efficientnet-b0"), ("fpn", "resnet18"),
                  ("pspnet", "mobilenet_v2"), ("unet", "densenet121")]
LIGHT = {"resnet18", "resnet34", "vgg11", "vgg13", "mobilenet_v2", "efficientnet-b0", "dpn68"}
# the paper's Table 2 "Pars (M)" where GRID2D.md marks the row legible (all Unet)
TABLE2_PARAMETERS_M = {"vgg11": 18.25, "mobilenet_v2": 6.63, "densenet161": 38.73,
                       "densenet169": 21.20, "densenet201": 28.57, "efficientnet-b6": 43.82}




def every_pair():
    return [pytest.param(arch, encoder, id=f"{arch}-{encoder}", marks=pytest.mark.heavy)
            for arch, encoder in itertools.product(ARCHITECTURES, ENCODERS)]


@pytest.mark.reference
@pytest.mark.parametrize(("arch", "encoder"), [pytest.param(*p, id="-".join(p)) for p in REPRESENTATIVE])
def test_representative_pairs_equal_smp(grid_parity, arch, encoder):
    result = grid_parity.parity(arch, encoder, size=SIZE)
    assert result.max_error <= grid_parity.TOLERANCE
    assert result.ours == result.smp


@pytest.mark.reference
@pytest.mark.parametrize(("arch", "encoder"), every_pair())
def test_every_pair_equals_smp(grid_parity, arch, encoder):
    result = grid_parity.parity(arch, encoder, size=SIZE)
    assert result.max_error <= grid_parity.TOLERANCE
    assert result.ours == result.smp


@pytest.mark.parametrize("encoder", [
    pytest.param(e, id=e, marks=[] if e in LIGHT else [pytest.mark.heavy]) for e in TABLE2_PARAMETERS_M])
def test_unet_parameters_are_the_papers_table2(encoder):
    network = paper_network("unet", encoder, (SIZE, SIZE, 1))
    assert round(trainable_parameters(network) / 1e6, 2) == TABLE2_PARAMETERS_M[encoder]


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_grey_images_in_float32_probabilities_of_the_same_size_out(arch):
    network = paper_network(arch, "resnet18")
    x = np.random.default_rng(0).normal(size=(2, SIZE, 96, 1)).astype(np.float32)
    y = network(x, training=False).numpy()
    assert y.shape == (2, SIZE, 96, 1) and y.dtype == np.float32
    assert y.min() >= 0.0 and y.max() <= 1.0


def test_pspnet_keeps_the_encoder_stages_past_depth_3():
    """smp builds the whole encoder; its layer4 is in the state_dict and the parameters."""
    network = paper_network("pspnet", "resnet18", (SIZE, SIZE, 1))
    names = {layer.name for layer in network.layers}
    assert {"encoder_layer3_0_conv1", "encoder_layer4_1_bn2"} <= names
    assert network.get_layer("decoder_psp_concat").output.shape[1:3] == (SIZE // 8, SIZE // 8)


def test_only_unet_after_vgg_has_smps_centre_block():
    def has_centre(arch, encoder):
        return any(layer.name.startswith("decoder_center")
                   for layer in paper_network(arch, encoder, (SIZE, SIZE, 1)).layers)

    assert has_centre("unet", "vgg11")
    assert not has_centre("unet", "resnet18") and not has_centre("linknet", "vgg11")


def test_every_weighted_layer_is_named_by_an_smp_module_path():
    network = paper_network("fpn", "resnet18", (SIZE, SIZE, 1))
    weighted = {layer.name for layer in network.layers if layer.weights}
    assert {"decoder_p5", "decoder_p4_skip_conv", "decoder_seg_blocks_3_block_0_block_1",
            "segmentation_head_0", "encoder_conv1"} <= weighted
    assert all(name.startswith(("encoder_", "decoder_", "segmentation_head_")) for name in weighted)


@pytest.mark.parametrize(("arch", "shape", "rule"), [
    pytest.param("unet", (60, SIZE, 1), "divisible by 32", id="unet-60"),
    pytest.param("fpn", (SIZE, 100, 1), "divisible by 32", id="fpn-100"),
    pytest.param("pspnet", (36, 36, 1), "divisible by 8", id="pspnet-36"),
])
def test_an_input_size_the_architecture_cannot_take_is_refused_before_building(arch, shape, rule):
    with pytest.raises(ConfigError, match=rf"{arch} takes H and W {rule}.*got {shape[0]}x{shape[1]}"):
        paper_network(arch, "resnet18", shape)


def test_pspnet_takes_multiples_of_8_that_are_not_of_32():
    assert paper_network("pspnet", "resnet18", (40, 40, 1)).output.shape == (None, 40, 40, 1)


@pytest.mark.parametrize(("arch", "encoder", "expected"), [
    pytest.param("segnet", "resnet18", "unknown architecture 'segnet'.*unet, linknet", id="arch"),
    pytest.param("unet", "resnext50", "unknown encoder 'resnext50'.*resnext50_32x4d", id="encoder"),
])
def test_unknown_architecture_or_encoder_lists_the_known_ones(arch, encoder, expected):
    with pytest.raises(ConfigError, match=expected):
        paper_network(arch, encoder)


def test_adaptive_pooling_uses_pytorchs_overlapping_bin_edges():
    """8 cells into 3 bins: PyTorch's edges floor(i*8/3)..ceil((i+1)*8/3) = [0,3) [2,6) [5,8)."""
    row = np.arange(8, dtype=np.float32)
    x = np.broadcast_to(row[None, :], (8, 8))[None, :, :, None]
    pooled = AdaptiveAveragePooling2D(3)(x).numpy()[0, 0, :, 0]
    np.testing.assert_allclose(pooled, [row[0:3].mean(), row[2:6].mean(), row[5:8].mean()])


@pytest.mark.reference
@pytest.mark.parametrize("size", [pytest.param(s, id=f"size{s}") for s in (7, 8, 13)])
def test_custom_layers_compute_pytorchs_pooling_and_aligned_bilinear(size):
    import torch
    import torch.nn.functional as F

    x = np.random.default_rng(size).normal(size=(1, size, size + 2, 4)).astype(np.float32)
    torch_x = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())

    def channels_last(t):
        return t.numpy().transpose(0, 2, 3, 1)

    for bins in (1, 2, 3, 6):
        expected = channels_last(F.adaptive_avg_pool2d(torch_x, bins))
        np.testing.assert_allclose(AdaptiveAveragePooling2D(bins)(x).numpy(), expected, atol=1e-6)
    up = F.interpolate(torch_x, scale_factor=4, mode="bilinear", align_corners=True)
    np.testing.assert_allclose(BilinearUpsampling2D(4)(x).numpy(), channels_last(up), atol=1e-5)
    reference = np.zeros((1, 2 * size + 1, 3, 1), np.float32)
    resized = F.interpolate(torch_x, size=reference.shape[1:3], mode="bilinear", align_corners=True)
    np.testing.assert_allclose(BilinearResizeLike()([x, reference]).numpy(), channels_last(resized),
                               atol=1e-5)


def test_custom_layers_survive_save_and_reload(tmp_path):
    inputs = tf.keras.Input((None, None, 3))
    up = BilinearUpsampling2D(2, name="up")(inputs)
    pooled = AdaptiveAveragePooling2D(3, name="pool")(up)
    back = BilinearResizeLike(name="back")([pooled, up])
    model = tf.keras.Model(inputs, back)
    path = tmp_path / "layers.keras"
    model.save(path)
    reloaded = tf.keras.models.load_model(path)
    x = np.random.default_rng(0).normal(size=(1, 5, 7, 3)).astype(np.float32)
    np.testing.assert_array_equal(reloaded(x).numpy(), model(x).numpy())
    assert reloaded.get_layer("up").get_config()["scale"] == 2
    assert reloaded.get_layer("pool").get_config()["bins"] == 3


def test_a_whole_paper_network_survives_save_and_reload(tmp_path):
    network = paper_network("pspnet", "resnet18", (SIZE, SIZE, 1))
    path = tmp_path / "pspnet.keras"
    network.save(path)
    reloaded = tf.keras.models.load_model(path)
    x = np.random.default_rng(0).normal(size=(1, SIZE, SIZE, 1)).astype(np.float32)
    np.testing.assert_allclose(reloaded(x, training=False).numpy(),
                               network(x, training=False).numpy(), atol=1e-6)


@pytest.mark.reference
def test_checkpoint_that_does_not_fit_is_refused_whole_listing_every_bad_key(grid_parity):
    network = paper_network("linknet", "resnet18", (SIZE, SIZE, 1))
    state_dict = {k: v.numpy() for k, v in grid_parity.smp_reference("linknet", "resnet18")
                  .state_dict().items() if not k.endswith("num_batches_tracked")}
    before = [w.numpy() for w in network.weights]
    state_dict["segmentation_head.0.weight"] = np.zeros((1, 16, 1, 1), np.float32)  # 32 inputs
    del state_dict["decoder.blocks.0.block.1.1.running_var"]
    state_dict["decoder.extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(WeightsError) as err:
        load_smp_state_dict(network, state_dict, source="model.pt")
    message = str(err.value)
    assert message.startswith("model.pt: weights do not fit the model")
    assert "missing keys (1): decoder.blocks.0.block.1.1.running_var" in message
    assert "unexpected keys (1): decoder.extra.weight" in message
    assert "mis-shaped keys (1): segmentation_head.0.weight: (1, 1, 16, 1)" in message
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, network.weights))


def test_module_paths_with_underscores_map_back_by_the_checkpoints_own_keys():
    paths = module_paths({"decoder.seg_blocks.0.block.0.block.0.weight": 0,
                          "encoder._conv_stem.weight": 0})
    assert paths == {"decoder_seg_blocks_0_block_0_block_0": "decoder.seg_blocks.0.block.0.block.0",
                     "encoder__conv_stem": "encoder._conv_stem"}
