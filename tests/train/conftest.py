"""Training tests: select Keras 2 (tf_keras) before any test module imports TensorFlow."""

import tfcovseg  # noqa: F401
