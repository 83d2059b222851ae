"""Parity of the paper's 100 Keras networks with segmentation_models_pytorch 0.6.0 (smp).

For each architecture x encoder: smp's model as the authors built it (``in_channels=1,
classes=1, activation="sigmoid"``, random weights, randomised normalisation parameters and
statistics, eval mode), and ``paper_network`` with that state_dict converted, on one random
1x1x64x64 input. Reported: the relative max-abs error of the logits (max |Keras - smp| /
max |smp| of the sigmoid's input: the whole forward pass but its last, elementwise step); the
largest absolute difference of the probabilities (not relative: where random weights drive the
logits to 1e4, a logit error of 1e-5 relative moves a probability near 0.5 by 1e-3); and the
parameters: Keras' trainable count, smp's
``sum(p.numel() for p in model.parameters())`` and the paper's Table 2 where it is legible
(GRID2D.md section 5). The encoders run as smp 0.6.0 runs them (efficientnet_pytorch 0.7.1
padding, Xception's fixed forward pass). Prints a Markdown table (README). Needs torch and smp.

    python benchmarks/grid_parity.py                            # all 100 pairs
    python benchmarks/grid_parity.py --archs unet --encoders resnet18 vgg11
"""

import argparse
import sys
from dataclasses import dataclass

# triton (pulled in by timm through torch._dynamo) segfaults when it loads after TensorFlow
sys.modules.setdefault("triton", None)

# isort: off
import numpy as np  # noqa: E402

import tfcovseg  # noqa: E402, F401  (first: selects tf_keras before TensorFlow loads)
import tensorflow as tf  # noqa: E402

from tfcovseg.bench.models2d import trainable_parameters  # noqa: E402
from tfcovseg.models.grid2d.convert import load_smp_state_dict  # noqa: E402
from tfcovseg.models.grid2d.encoders import ENCODERS  # noqa: E402
from tfcovseg.models.grid2d.networks import ARCHITECTURES, paper_network  # noqa: E402
from tfcovseg.settings.grid2d import Encoders  # noqa: E402
# isort: on

SIZE = 64
SEED = 0
TOLERANCE = 1e-4  # relative max-abs error of the logits, float32 (sums in another order)
SMP_060 = Encoders(efficientnet_padding="native_static", xception_forward="fixed")
SMP_CLASSES = {"unet": "Unet", "linknet": "Linknet", "fpn": "FPN", "pspnet": "PSPNet"}
# Table 2 "Pars (M)" of the rows GRID2D.md marks legible (all Unet)
PAPER_PARAMETERS_M = {("unet", "vgg11"): 18.25, ("unet", "mobilenet_v2"): 6.63,
                      ("unet", "densenet161"): 38.73, ("unet", "densenet169"): 21.20,
                      ("unet", "densenet201"): 28.57, ("unet", "efficientnet-b6"): 43.82}
# uniform ranges of the BatchNorm/GroupNorm tensors smp_reference draws
NORM_RANGES = {"running_mean": (-0.5, 0.5), "running_var": (0.5, 2.0), "weight": (0.5, 1.5),
               "bias": (-0.2, 0.2)}
LOGITS = "segmentation_head_2"  # the sigmoid; its input is the logits


@dataclass(frozen=True)
class Parity:
    arch: str
    encoder: str
    max_error: float  # relative, of the logits
    probability_error: float  # absolute
    ours: int
    smp: int
    paper_m: float | None

    @property
    def exact(self) -> bool:
        """Within the tolerance, with smp's parameter count (and the paper's, where legible)."""
        paper = self.paper_m is None or round(self.ours / 1e6, 2) == self.paper_m
        return self.max_error <= TOLERANCE and self.ours == self.smp and paper


def smp_reference(arch: str, encoder: str, seed: int = SEED):
    """smp's model for the pair, random weights and normalisation, in eval mode."""
    import segmentation_models_pytorch as smp
    import torch

    torch.manual_seed(seed)
    model = getattr(smp, SMP_CLASSES[arch])(encoder, encoder_weights=None, in_channels=1,
                                            classes=1, activation="sigmoid")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm2d, torch.nn.GroupNorm)):
                for name, (low, high) in NORM_RANGES.items():
                    tensor = getattr(module, name, None)
                    if tensor is not None:
                        tensor.copy_(torch.rand(tensor.shape, generator=generator) * (high - low) + low)
    return model.eval()


def forward_smp(model, x_nhwc):
    """(logits, probabilities) of smp's model, channels last."""
    import torch

    captured = {}
    hook = model.segmentation_head[2].register_forward_hook(
        lambda module, inputs, output: captured.update(logits=inputs[0]))
    with torch.no_grad():
        probabilities = model(torch.from_numpy(x_nhwc.transpose(0, 3, 1, 2).copy()))
    hook.remove()
    return tuple(t.numpy().transpose(0, 2, 3, 1) for t in (captured["logits"], probabilities))


def forward_keras(network, x_nhwc):
    """(logits, probabilities) of the Keras network."""
    both = tf.keras.Model(network.input, [network.get_layer(LOGITS).input, network.output])
    return tuple(t.numpy() for t in both(x_nhwc, training=False))


def relative_error(ours, reference) -> float:
    return float(np.abs(ours - reference).max() / np.abs(reference).max())


def absolute_error(ours, reference) -> float:
    return float(np.abs(ours - reference).max())


def parity(arch: str, encoder: str, size: int = SIZE, seed: int = SEED) -> Parity:
    reference = smp_reference(arch, encoder, seed)
    network = paper_network(arch, encoder, (size, size, 1), encoder_settings=SMP_060)
    load_smp_state_dict(network, {k: v.numpy() for k, v in reference.state_dict().items()
                                  if not k.endswith("num_batches_tracked")})
    x = np.random.default_rng(seed).normal(size=(1, size, size, 1)).astype(np.float32)
    (logits, probabilities), (smp_logits, smp_probabilities) = (forward_keras(network, x),
                                                                forward_smp(reference, x))
    result = Parity(arch, encoder, relative_error(logits, smp_logits),
                    absolute_error(probabilities, smp_probabilities), trainable_parameters(network),
                    sum(p.numel() for p in reference.parameters()),
                    PAPER_PARAMETERS_M.get((arch, encoder)))
    tf.keras.backend.clear_session()
    return result


def markdown(rows) -> str:
    """One row per encoder, one column per architecture: logits error and parameters."""
    archs = list(dict.fromkeys(r.arch for r in rows))
    cells = {(r.encoder, r.arch): r for r in rows}
    lines = ["| encoder | " + " | ".join(archs) + " | paper Unet (M) |",
             "|---|" + "---|" * (len(archs) + 1)]
    for encoder in dict.fromkeys(r.encoder for r in rows):
        found = [cells.get((encoder, arch)) for arch in archs]
        paper = PAPER_PARAMETERS_M.get(("unet", encoder))
        lines.append(f"| {encoder} | " + " | ".join("" if r is None else _cell(r) for r in found)
                     + f" | {'' if paper is None else f'{paper:.2f}'} |")
    worst = max(rows, key=lambda r: r.probability_error)
    lines += ["", f"Each cell: relative max-abs error of the logits, Keras parameters (= smp's unless "
              f"shown). {sum(r.exact for r in rows)} of {len(rows)} pairs within {TOLERANCE:g}, with "
              f"smp's parameter count (and the paper's, where legible). Largest difference of the "
              f"probabilities: {worst.probability_error:.1e} ({worst.arch} {worst.encoder})."]
    return "\n".join(lines)


def _cell(r: Parity) -> str:
    parameters = f"{r.ours:,}" if r.ours == r.smp else f"{r.ours:,} (smp {r.smp:,})"
    return f"{r.max_error:.0e}, {parameters}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=list(ARCHITECTURES), choices=list(ARCHITECTURES))
    parser.add_argument("--encoders", nargs="+", default=list(ENCODERS), choices=list(ENCODERS))
    args = parser.parse_args(argv)
    rows = []
    for arch in args.archs:
        for encoder in args.encoders:
            rows.append(parity(arch, encoder))
            print(f"{arch} {encoder}: {rows[-1].max_error:.1e}", file=sys.stderr, flush=True)
    print(markdown(rows))
    return 0 if all(r.exact for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
