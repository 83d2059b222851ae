"""Prediction on whole CT volumes, evaluation as the papers score it, and TF Serving export.

``load_predictor`` (a run folder or an export -> HU volume in, lesion probabilities out),
``predict_ct``, ``evaluate`` and ``export_savedmodel`` live in the modules of this package
(``tfcovseg.infer.predictor``, ``.predict``, ``.evaluate``, ``.export``); the sliding window
is ``tfcovseg.models.sliding_window`` (training tunes with it too). Importing the package
itself does not import TensorFlow, so ``evaluate --predictions`` stays light.
"""

# Two NIfTI grids are the same when their affines agree to 0.01 mm (float32 headers round
# world positions of a few hundred mm at about 1e-5 mm; a real misregistration is far larger).
GRID_TOLERANCE_MM = 1e-2
