"""tfcovseg: COVID-19 lesion and lung segmentation in chest CT with Keras/TensorFlow.

Importing the package selects Keras 2 (``tf_keras``) for TensorFlow and ``tf.keras`` for
``segmentation_models`` before TensorFlow is first imported (see DESIGN.md, "One Keras"), and
quiets TensorFlow's C++ logging unless the user set its level (``tfcovseg --verbose`` keeps it).

``tfcovseg.load_model(path)`` (``tfcovseg.loader``) loads any model tfcovseg writes; it is
imported on first use, so ``import tfcovseg`` does not load TensorFlow.
"""

import os
import sys
import warnings

__version__ = "0.1.0"

_KERAS_ENV = {"TF_USE_LEGACY_KERAS": "1", "SM_FRAMEWORK": "tf.keras"}
# TF_CPP_MIN_LOG_LEVEL 3 leaves only FATAL: a healthy CPU run otherwise shows E0000 lines (cuInit
# without a GPU driver, grappler's "remapper failed"); 2 hides warnings but not these errors.
TF_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"
QUIET_TF_LOG_LEVEL = "3"
_TF_LOG_LEVEL_FROM_USER = TF_LOG_LEVEL in os.environ


def keep_tensorflow_logs() -> None:
    """Let TensorFlow's C++ log lines through (``tfcovseg --verbose``); a level the user set stays.

    TensorFlow reads the level when it loads: call this before it is imported.
    """
    if not _TF_LOG_LEVEL_FROM_USER:
        os.environ.pop(TF_LOG_LEVEL, None)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its native start-up lines off the terminal (the CLI calls this).

    TensorFlow's libraries print ``I0000 ... oneDNN custom operations are on`` and ``Could not
    find cuda drivers`` (and absl's "WARNING: All log messages before absl::InitializeLog()")
    while they load, before any log level applies; the file descriptor of stderr is pointed at
    the null device for the import alone. Nothing is hidden when the user asked for TensorFlow's
    logs (``--verbose``, or a ``TF_CPP_MIN_LOG_LEVEL`` other than tfcovseg's quiet one); a
    failing import still raises its error after stderr is back.
    """
    if "tensorflow" in sys.modules or os.environ.get(TF_LOG_LEVEL) != QUIET_TF_LOG_LEVEL:
        return
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _select_keras() -> None:
    tf_loaded_with_keras3 = (
        "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1"
    )
    for name, value in _KERAS_ENV.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault(TF_LOG_LEVEL, QUIET_TF_LOG_LEVEL)
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

__all__ = ["TfcovsegError", "__version__", "load_model"]


def __getattr__(name):
    if name == "load_model":
        from tfcovseg.loader import load_model

        return load_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
