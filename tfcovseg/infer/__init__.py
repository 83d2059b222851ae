"""Prediction on whole CT volumes, evaluation as the papers score it, and TF Serving export.

``load_predictor`` (a run folder or an export -> HU volume in, lesion probabilities out),
``sliding_window``, ``predict_ct``, ``evaluate`` and ``export_savedmodel`` live in the modules
of this package; importing it does not import TensorFlow.
"""
