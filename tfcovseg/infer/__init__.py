"""Prediction on whole CT volumes, evaluation as the papers score it, and TF Serving export.

``load_predictor`` (a run folder or an export -> HU volume in, lesion probabilities out),
``sliding_window``, ``predict_ct``, ``evaluate`` and ``export_savedmodel`` live in the modules
of this package (``tfcovseg.infer.predictor``, ``.sliding_window``, ``.predict``,
``.evaluate``, ``.export``). Importing the package itself does not import TensorFlow, so
``evaluate --predictions`` and the shared defaults below stay light.
"""

# Two NIfTI grids are the same when their affines agree to 0.01 mm (float32 headers round
# world positions of a few hundred mm at about 1e-5 mm; a real misregistration is far larger).
GRID_TOLERANCE_MM = 1e-2

DEFAULT_OVERLAP = 0.5  # sliding-window overlap between neighbouring windows (nnU-Net's 0.5)
