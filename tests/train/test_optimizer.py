import numpy as np
import tensorflow as tf

from tfcovseg.train.optimizer import FastaiAdam


def _fastai_adam_steps(p, grads, lr, wd, beta_1=0.9, beta_2=0.99, eps=1e-5, decay=True):
    """fastai's Adam (true weight decay, dampened averages, debiasing), written out in NumPy."""
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for step, g in enumerate(grads, start=1):
        if decay:
            p = p * (1 - lr * wd)
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g**2
        p = p - lr * (m / (1 - beta_1**step)) / (np.sqrt(v / (1 - beta_2**step)) + eps)
    return p


def test_fastai_adam_matches_fastai_update_and_skips_decay_of_bn_and_bias():
    inputs = tf.keras.Input((3,))
    x = tf.keras.layers.Dense(2, name="dense")(inputs)
    x = tf.keras.layers.BatchNormalization(name="bn")(x)
    model = tf.keras.Model(inputs, x)
    rng = np.random.default_rng(0)
    variables = {v.name: v for v in model.trainable_variables}
    start = {name: v.numpy().astype(np.float64) for name, v in variables.items()}
    grads = {name: [rng.normal(size=v.shape) for _ in range(3)] for name, v in variables.items()}
    optimizer = FastaiAdam(learning_rate=0.01, weight_decay=0.1)
    for i in range(3):
        optimizer.apply_gradients(
            [(tf.constant(grads[n][i], tf.float32), v) for n, v in variables.items()])
    for name, v in variables.items():
        decayed = name.endswith("kernel:0")
        expected = _fastai_adam_steps(start[name], grads[name], 0.01, 0.1, decay=decayed)
        np.testing.assert_allclose(v.numpy(), expected, rtol=1e-5, atol=1e-6, err_msg=name)


def test_fastai_adam_defaults_are_fastais():
    optimizer = FastaiAdam()
    assert optimizer.beta_2 == 0.99
    assert optimizer.epsilon == 1e-5
    assert isinstance(optimizer.beta_1, tf.Variable)


def test_reset_optimizer_state_makes_the_next_step_equal_a_fresh_optimizers():
    from tfcovseg.train.optimizer import reset_optimizer_state

    def step(model, optimizer, x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(x) ** 2)
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                      model.trainable_variables))

    x = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)
    trained = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2)])
    used = FastaiAdam(learning_rate=0.01)
    for _ in range(5):
        step(trained, used, x)
    fresh_model = tf.keras.models.clone_model(trained)
    fresh_model.set_weights(trained.get_weights())
    reset_optimizer_state(used)
    assert int(used.iterations) == 0
    assert all(not np.any(v.numpy()) for v in (*used._momentums, *used._velocities))
    step(trained, used, x)
    step(fresh_model, FastaiAdam(learning_rate=0.01), x)
    for after_reset, fresh in zip(trained.get_weights(), fresh_model.get_weights()):
        np.testing.assert_allclose(after_reset, fresh, atol=1e-7)
