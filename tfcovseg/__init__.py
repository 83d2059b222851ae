"""tfcovseg: COVID-19 lesion and lung segmentation in chest CT with Keras/TensorFlow.

Importing the package selects Keras 2 (``tf_keras``) for TensorFlow and ``tf.keras`` for
``segmentation_models`` before TensorFlow is first imported (see DESIGN.md, "One Keras").
"""

import os
import sys
import warnings

__version__ = "0.1.0"

_KERAS_ENV = {"TF_USE_LEGACY_KERAS": "1", "SM_FRAMEWORK": "tf.keras"}


def _select_keras() -> None:
    tf_loaded_with_keras3 = (
        "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1"
    )
    for name, value in _KERAS_ENV.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if tf_loaded_with_keras3:
        warnings.warn(
            "tensorflow was imported before tfcovseg without TF_USE_LEGACY_KERAS=1, so tf.keras "
            "is Keras 3; tfcovseg and segmentation_models need Keras 2 (tf_keras). Import "
            "tfcovseg first or set TF_USE_LEGACY_KERAS=1 before importing tensorflow.",
            stacklevel=3,
        )
    elif os.environ.get("TF_USE_LEGACY_KERAS") != "1" or os.environ.get("SM_FRAMEWORK") != "tf.keras":
        warnings.warn(
            "TF_USE_LEGACY_KERAS / SM_FRAMEWORK are set to other values than tfcovseg needs "
            "(1 / tf.keras); models may fail to build.",
            stacklevel=3,
        )


_select_keras()

from tfcovseg.errors import TfcovsegError  # noqa: E402

__all__ = ["TfcovsegError", "__version__"]
