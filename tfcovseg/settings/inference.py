"""Settings of prediction and evaluation: the sliding window, test-time mirroring and
``configs/*_eval.yaml``.

Ma et al.'s benchmark scores lesions with a 3 mm NSD tolerance; patch-mode models are applied
by a sliding window with nnU-Net's overlap of 0.5 (``tfcovseg.models.sliding_window``).
Test-time mirroring (optional, off by default as in the paper) averages the probabilities of
every combination of flips of the chosen axes, as nnU-Net does: all three, D, H and W, give
2^3 = 8 predictions per window.
"""

from tfcovseg.config import bounded, frozen_settings
from tfcovseg.errors import ConfigError
from tfcovseg.metrics import LESION_TOLERANCE_MM

DEFAULT_OVERLAP = 0.5  # sliding-window overlap between neighbouring windows (nnU-Net's 0.5)
MIRROR_AXES = (0, 1, 2)  # nnU-Net mirrors a 3D model along D, H and W (2^3 flips)


def check_sliding_window(overlap=None, batch_size=None) -> None:
    """Refuse a sliding-window ``overlap`` outside [0, 1) or a ``batch_size`` below 1 (None: not
    given, nothing to check)."""
    problems = []
    if overlap is not None and not 0.0 <= overlap < 1.0:
        problems.append(f"overlap must be in [0, 1) (a share of the window), got {overlap:g}")
    if batch_size is not None and not (int(batch_size) == batch_size and batch_size >= 1):
        problems.append(f"batch size must be a whole number of windows >= 1, got {batch_size}")
    if problems:
        raise ConfigError("sliding window: " + "; ".join(problems))


def _tta_axes_problem(tta_axes) -> str | None:
    if tta_axes is None:
        return None
    axes = list(tta_axes)
    if axes and len(set(axes)) == len(axes) and set(axes) <= set(MIRROR_AXES):
        return None
    return f"axes must be distinct values among 0, 1, 2 (D, H, W), got {axes}"


def check_tta_axes(tta_axes=None) -> None:
    """Refuse test-time mirroring axes that are not distinct axes among 0, 1, 2 (D, H, W);
    None: no mirroring, nothing to check."""
    problem = _tta_axes_problem(tta_axes)
    if problem:
        raise ConfigError(f"test-time mirroring: {problem}")


@frozen_settings
class Inference:
    """How a model is applied to a volume (``tfcovseg.infer.predictor``)."""

    overlap: float = bounded(DEFAULT_OVERLAP, low=0.0, high=1.0, high_open=True)  # patch mode
    batch_size: int = bounded(1, low=1)  # windows per model call, patch mode
    # flips averaged: every combination of flips of these axes (0, 1, 2 = D, H, W); None: none
    tta_axes: tuple[int, ...] | None = bounded(None, low=0, high=2)

    def __post_init__(self):
        problem = _tta_axes_problem(self.tta_axes)
        if problem:
            raise ValueError(f"tta_axes: {problem}")


DEFAULT_INFERENCE = Inference()  # nnU-Net's window overlap 0.5, one window per call, no mirroring


@frozen_settings
class EvaluateConfig:
    """An evaluation setting (``configs/mosmed_eval.yaml``): ``evaluate``'s keyword arguments."""

    data: str | None = None
    tolerance: float = bounded(LESION_TOLERANCE_MM, low=0.0, low_open=True)  # NSD, mm
    # sliding window of patch-mode models; None: 0.5 and 1 for a run, as exported for an export
    overlap: float | None = bounded(None, low=0.0, high=1.0, high_open=True)
    batch_size: int | None = bounded(None, low=1)
    # test-time mirroring axes (0, 1, 2 = D, H, W); None: none for a run, as exported for an export
    tta_axes: tuple[int, ...] | None = bounded(None, low=0, high=2)
    input_window: tuple[float, float] | None = None  # HU window of images rescaled to 0..255

