"""Adam as fastai configures it (PAPERS.md, "fastai conventions").

fastai's ``Adam``: beta_2 0.99, eps 1e-5 added to the debiased root of the second moment,
decoupled ("true") weight decay ``p <- p * (1 - lr * wd)`` before the step, and no weight decay
on BatchNorm parameters and biases (``bn_wd=False``, ``wd_bn_bias=False``). ``beta_1`` is a
variable so that ``OneCycle`` can cycle it between steps of a compiled train function.
``reset_optimizer_state`` clears Adam's moments and step count, as fastai's ``freeze()`` and
``unfreeze()`` do.
"""

import tensorflow as tf

FASTAI_BETA_1 = 0.9
FASTAI_BETA_2 = 0.99
FASTAI_EPS = 1e-5
NO_DECAY_NAMES = (r"/gamma:\d+$", r"/beta:\d+$", r"/bias:\d+$")  # BN scale/offset and biases


class FastaiAdam(tf.keras.optimizers.AdamW):
    """AdamW with fastai's update rule, defaults and weight-decay exclusions."""

    def __init__(
        self,
        learning_rate=1e-3,
        weight_decay: float = 0.0,
        beta_1: float = FASTAI_BETA_1,
        beta_2: float = FASTAI_BETA_2,
        epsilon: float = FASTAI_EPS,
        name: str = "FastaiAdam",
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            name=name,
            **kwargs,
        )
        self.beta_1 = tf.Variable(beta_1, trainable=False, dtype=tf.float32, name="beta_1")
        self.exclude_from_weight_decay(var_names=list(NO_DECAY_NAMES))

    def update_step(self, gradient, variable):
        # fastai: m <- b1 m + (1-b1) g; v <- b2 v + (1-b2) g^2;
        # p <- p - lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
        dtype = variable.dtype
        lr = tf.cast(self.learning_rate, dtype)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        index = self._index_dict[self._var_key(variable)]
        m, v = self._momentums[index], self._velocities[index]
        gradient = tf.convert_to_tensor(gradient)
        m.assign(beta_1 * m + (1.0 - beta_1) * gradient)
        v.assign(beta_2 * v + (1.0 - beta_2) * tf.square(gradient))
        m_hat = m / (1.0 - tf.pow(beta_1, step))
        v_hat = v / (1.0 - tf.pow(beta_2, step))
        variable.assign_sub(lr * m_hat / (tf.sqrt(v_hat) + tf.cast(self.epsilon, dtype)))

    def get_config(self):
        config = super().get_config()
        config["beta_1"] = float(self.beta_1.numpy())
        return config


def base_optimizer(optimizer):
    """The optimizer under a mixed-precision ``LossScaleOptimizer`` wrapper, if any."""
    return getattr(optimizer, "inner_optimizer", optimizer)


def reset_optimizer_state(optimizer) -> None:
    """Zero Adam's moments and step count, as fastai's ``freeze()``/``unfreeze()`` recreate its
    optimizer; the learning rate and the other hyperparameters stay."""
    optimizer = base_optimizer(optimizer)
    optimizer.iterations.assign(0)
    for slot in (*optimizer._momentums, *optimizer._velocities):
        slot.assign(tf.zeros_like(slot))
