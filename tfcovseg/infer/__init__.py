"""Prediction on whole CT volumes, evaluation as the papers score it, and TF Serving export.

``load_predictor`` (a run folder or an export -> HU volume in, lesion probabilities out),
``sliding_window``, ``predict_ct``, ``evaluate`` and ``export_savedmodel`` live in the modules
of this package (``tfcovseg.infer.predictor``, ``.sliding_window``, ``.predict``,
``.evaluate``, ``.export``). Importing the package itself does not import TensorFlow, so
``evaluate --predictions`` and the shared defaults and checks below stay light.
"""

from tfcovseg.errors import ConfigError

# Two NIfTI grids are the same when their affines agree to 0.01 mm (float32 headers round
# world positions of a few hundred mm at about 1e-5 mm; a real misregistration is far larger).
GRID_TOLERANCE_MM = 1e-2

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
