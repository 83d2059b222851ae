"""Dual Path Networks 68 and 98 (Chen et al. 2017) as segmentation_models_pytorch's encoder.

Structure and module paths of Cadene's ``pretrainedmodels`` DPN (Ross Wightman's port, which
smp vendors): pre-activation BN-ReLU-conv units (BN eps 1e-3), grouped 3x3 convolutions, and a
pair of tensors between blocks: the residual path (added) and the densely connected path
(concatenated). Decoder features, as smp returns them: the stem's ReLU (stride 2) and
``relu(concat(residual, dense))`` after stages 2, 3, 4 (``<last block of the stage>.skip.relu``);
the output is the final ``conv5_bn_ac`` BN-ReLU (stride 32).
"""

from tfcovseg.models.grid2d.encoders.encoder import ROOT, Encoder
from tfcovseg.models.grid2d.encoders.imagenet import DPN_MEAN_STD
from tfcovseg.models.grid2d.encoders.layers import (
    ChannelSplit,
    add,
    batch_norm,
    concat,
    conv2d,
    feature_tap,
    layer_name,
    max_pool,
    relu,
)

DPN_BN_EPS = 1e-3
BASE_WIDTH = 64  # residual width of stage 2 per unit of bw_factor; doubles each stage
STAGE_STRIDES = (1, 2, 2, 2)
FEATURES = f"{ROOT}.features"

# pretrainedmodels.dpn: small, num_init_features, k_r, groups, k_sec, inc_sec
CONFIGS = {
    "dpn68": dict(small=True, init_features=10, k_r=128, groups=32, k_sec=(3, 4, 12, 3),
                  inc_sec=(16, 32, 32, 64)),
    "dpn98": dict(small=False, init_features=96, k_r=160, groups=40, k_sec=(3, 6, 20, 3),
                  inc_sec=(16, 32, 32, 128)),
}


def bn_act_conv(x, filters, kernel, path, stride=1, padding=0, groups=1):
    x = relu(batch_norm(x, f"{path}.bn", eps=DPN_BN_EPS), f"{path}.act")
    return conv2d(x, filters, kernel, f"{path}.conv", stride=stride, padding=padding, groups=groups)


def dual_path_block(paths, width, bottleneck, inc, groups, stride, project, path):
    """One DualPathBlock; ``paths`` is the stem tensor or a (residual, dense) pair."""
    x = concat(paths, f"{path}.cat") if isinstance(paths, tuple) else paths
    if project:
        kind = "c1x1_w_s2" if stride == 2 else "c1x1_w_s1"
        shortcut = bn_act_conv(x, width + 2 * inc, 1, f"{path}.{kind}", stride=stride)
        split = ChannelSplit([width, 2 * inc], name=layer_name(f"{path}.{kind}.split"))
        residual, dense = split(shortcut)
    else:
        residual, dense = paths
    y = bn_act_conv(x, bottleneck, 1, f"{path}.c1x1_a")
    y = bn_act_conv(y, bottleneck, 3, f"{path}.c3x3_b", stride=stride, padding=1, groups=groups)
    y = bn_act_conv(y, width + inc, 1, f"{path}.c1x1_c")
    new_residual, new_dense = ChannelSplit([width, inc], name=layer_name(f"{path}.c1x1_c.split"))(y)
    residual = add([residual, new_residual], f"{path}.add")
    return residual, concat([dense, new_dense], f"{path}.dense")


def dpn_graph(small, init_features, k_r, groups, k_sec, inc_sec):
    bw_factor = 1 if small else 4
    stem_kernel = 3 if small else 7

    def graph(x, _settings):
        x = conv2d(x, init_features, stem_kernel, f"{FEATURES}.conv1_1.conv", stride=2,
                   padding=stem_kernel // 2)
        x = relu(batch_norm(x, f"{FEATURES}.conv1_1.bn", eps=DPN_BN_EPS), f"{FEATURES}.conv1_1.act")
        paths = max_pool(x, 3, 2, f"{FEATURES}.conv1_1.pool", padding=1)
        for stage, (blocks, inc, stride) in enumerate(zip(k_sec, inc_sec, STAGE_STRIDES), start=2):
            width = BASE_WIDTH * 2 ** (stage - 2) * bw_factor
            bottleneck = k_r * width // (BASE_WIDTH * bw_factor)
            for index in range(1, blocks + 1):
                first = index == 1
                paths = dual_path_block(paths, width, bottleneck, inc, groups, stride if first else 1,
                                        first, f"{FEATURES}.conv{stage}_{index}")
            if stage < len(k_sec) + 1:  # a decoder feature; the last stage ends in conv5_bn_ac
                skip = stage_skip(stage, blocks)
                feature = relu(concat(paths, f"{skip}.cat"), f"{skip}.relu")
                residual, dense = paths
                paths = (feature_tap(residual, feature, f"{skip}.tap"), dense)
        x = concat(paths, f"{FEATURES}.conv5_bn_ac.cat")
        x = batch_norm(x, f"{FEATURES}.conv5_bn_ac.bn", eps=DPN_BN_EPS)
        return relu(x, f"{FEATURES}.conv5_bn_ac.act")

    return graph


def stage_skip(stage: int, blocks: int) -> str:
    """smp's ``F.relu(torch.cat(x))`` after a stage, named under the stage's last block."""
    return f"{FEATURES}.conv{stage}_{blocks}.skip"


def dpn_taps(k_sec) -> tuple[str | None, ...]:
    skips = (f"{stage_skip(stage, blocks)}.relu" for stage, blocks in enumerate(k_sec[:-1], start=2))
    return (None, layer_name(f"{FEATURES}.conv1_1.act"), *map(layer_name, skips),
            layer_name(f"{FEATURES}.conv5_bn_ac.act"))


ENCODERS = {
    name: Encoder(name, dpn_graph(**config), taps=dpn_taps(config["k_sec"]), mean_std=DPN_MEAN_STD)
    for name, config in CONFIGS.items()
}
