"""Settings of prediction and evaluation: the sliding window and ``configs/*_eval.yaml``.

Ma et al.'s benchmark scores lesions with a 3 mm NSD tolerance; patch-mode models are applied
by a sliding window with nnU-Net's overlap of 0.5 (``tfcovseg.models.sliding_window``).
"""

from tfcovseg.config import bounded, frozen_settings
from tfcovseg.errors import ConfigError
from tfcovseg.metrics import LESION_TOLERANCE_MM

DEFAULT_OVERLAP = 0.5  # sliding-window overlap between neighbouring windows (nnU-Net's 0.5)


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


@frozen_settings
class EvaluateConfig:
    """An evaluation setting (``configs/mosmed_eval.yaml``): ``evaluate``'s keyword arguments."""

    data: str | None = None
    tolerance: float = bounded(LESION_TOLERANCE_MM, low=0.0, low_open=True)  # NSD, mm
    # sliding window of patch-mode models; None: 0.5 and 1 for a run, as exported for an export
    overlap: float | None = bounded(None, low=0.0, high=1.0, high_open=True)
    batch_size: int | None = bounded(None, low=1)
    input_window: tuple[float, float] | None = None  # HU window of images rescaled to 0..255
