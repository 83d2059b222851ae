"""Dual Path Networks 68 and 98 (Chen et al. 2017) as segmentation_models_pytorch's encoder.

Structure and module paths of Cadene's ``pretrainedmodels`` DPN (Ross Wightman's port, which
smp vendors): pre-activation BN-ReLU-conv units (BN eps 1e-3), grouped 3x3 convolutions, and a
pair of tensors between blocks: the residual path (added) and the densely connected path
(concatenated). Decoder features, as smp returns them: the stem's ReLU (stride 2) and
``relu(concat(residual, dense))`` after stages 2, 3, 4 (``conv<n>/relu``); the output is the final
``conv5_bn_ac`` BN-ReLU (stride 32).
"""

from tfcovseg.bench.backbones.encoder import Encoder
from tfcovseg.bench.backbones.imagenet import DPN_MEAN_STD
from tfcovseg.bench.backbones.layers import (
    ChannelSplit,
    FeatureTap,
    batch_norm,
    concat,
    conv2d,
    layers,
    max_pool,
    relu,
)

DPN_BN_EPS = 1e-3
BASE_WIDTH = 64  # residual width of stage 2 per unit of bw_factor; doubles each stage
STAGE_STRIDES = (1, 2, 2, 2)

# pretrainedmodels.dpn: small, num_init_features, k_r, groups, k_sec, inc_sec
CONFIGS = {
    "dpn68": dict(small=True, init_features=10, k_r=128, groups=32, k_sec=(3, 4, 12, 3),
                  inc_sec=(16, 32, 32, 64)),
    "dpn98": dict(small=False, init_features=96, k_r=160, groups=40, k_sec=(3, 6, 20, 3),
                  inc_sec=(16, 32, 32, 128)),
}


def bn_act_conv(x, filters, kernel, name, stride=1, padding=0, groups=1):
    x = relu(batch_norm(x, f"{name}/bn", eps=DPN_BN_EPS), f"{name}/act")
    return conv2d(x, filters, kernel, f"{name}/conv", stride=stride, padding=padding, groups=groups)


def dual_path_block(paths, width, bottleneck, inc, groups, stride, project, name):
    """One DualPathBlock; ``paths`` is the stem tensor or a (residual, dense) pair."""
    x = concat(paths, f"{name}/cat") if isinstance(paths, tuple) else paths
    if project:
        kind = "c1x1_w_s2" if stride == 2 else "c1x1_w_s1"
        shortcut = bn_act_conv(x, width + 2 * inc, 1, f"{name}/{kind}", stride=stride)
        residual, dense = ChannelSplit([width, 2 * inc], name=f"{name}/{kind}/split")(shortcut)
    else:
        residual, dense = paths
    y = bn_act_conv(x, bottleneck, 1, f"{name}/c1x1_a")
    y = bn_act_conv(y, bottleneck, 3, f"{name}/c3x3_b", stride=stride, padding=1, groups=groups)
    y = bn_act_conv(y, width + inc, 1, f"{name}/c1x1_c")
    new_residual, new_dense = ChannelSplit([width, inc], name=f"{name}/c1x1_c/split")(y)
    residual = layers.Add(name=f"{name}/add")([residual, new_residual])
    return residual, concat([dense, new_dense], f"{name}/dense")


def dpn_graph(small, init_features, k_r, groups, k_sec, inc_sec):
    bw_factor = 1 if small else 4
    stem_kernel = 3 if small else 7

    def graph(x):
        x = conv2d(x, init_features, stem_kernel, "features/conv1_1/conv", stride=2,
                   padding=stem_kernel // 2)
        x = relu(batch_norm(x, "features/conv1_1/bn", eps=DPN_BN_EPS), "features/conv1_1/act")
        paths = max_pool(x, 3, 2, "features/conv1_1/pool", padding=1)
        for stage, (blocks, inc, stride) in enumerate(zip(k_sec, inc_sec, STAGE_STRIDES), start=2):
            width = BASE_WIDTH * 2 ** (stage - 2) * bw_factor
            bottleneck = k_r * width // (BASE_WIDTH * bw_factor)
            for index in range(1, blocks + 1):
                first = index == 1
                paths = dual_path_block(paths, width, bottleneck, inc, groups,
                                        stride if first else 1, first, f"features/conv{stage}_{index}")
            if stage < len(k_sec) + 1:  # a decoder feature; the last stage ends in conv5_bn_ac
                feature = relu(concat(paths, f"conv{stage}/cat"), f"conv{stage}/relu")
                residual, dense = paths
                paths = (FeatureTap(name=f"conv{stage}/tap")([residual, feature]), dense)
        x = concat(paths, "features/conv5_bn_ac/cat")
        return relu(batch_norm(x, "features/conv5_bn_ac/bn", eps=DPN_BN_EPS), "features/conv5_bn_ac/act")

    return graph


ENCODERS = {
    name: Encoder(name, dpn_graph(**config),
                  feature_layers=("conv4/relu", "conv3/relu", "conv2/relu", "features/conv1_1/act"),
                  mean_std=DPN_MEAN_STD)
    for name, config in CONFIGS.items()
}
