import numpy as np
import pytest

from tfcovseg.train.losses import (
    DiceCrossEntropy,
    cross_entropy_loss,
    foreground_dice_loss,
    milletari_dice_loss,
)


def _softmax(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 4, 5, 2)).astype(np.float32)
    labels = (rng.random((2, 3, 4, 5, 1)) > 0.7).astype(np.int32)
    return labels, logits


def test_milletari_dice_matches_squared_denominator_formula_per_item_and_class(batch):
    labels, logits = batch
    p = _softmax(logits.astype(np.float64))
    g = np.eye(2)[labels[..., 0]]
    axes = (1, 2, 3)
    dice = (2 * (p * g).sum(axes) + 1e-7) / ((p**2).sum(axes) + (g**2).sum(axes) + 1e-7)
    assert dice.shape == (2, 2)  # items x classes, background included
    np.testing.assert_allclose(float(milletari_dice_loss(labels, logits)), 1 - dice.mean(), rtol=1e-5)


def test_foreground_dice_sums_over_batch_without_squares(batch):
    labels, logits = batch
    p = _softmax(logits.astype(np.float64))[..., 1]
    g = labels[..., 0].astype(float)
    expected = 1 - (2 * (p * g).sum() + 1e-7) / (p.sum() + g.sum() + 1e-7)
    np.testing.assert_allclose(float(foreground_dice_loss(labels, logits)), expected, rtol=1e-5)


def test_cross_entropy_is_mean_negative_log_likelihood(batch):
    labels, logits = batch
    p = _softmax(logits.astype(np.float64))
    picked = np.take_along_axis(p, labels, axis=-1)
    np.testing.assert_allclose(float(cross_entropy_loss(labels, logits)), -np.log(picked).mean(),
                               rtol=1e-5)


def test_dice_cross_entropy_is_one_to_one_sum_and_near_zero_when_perfect(batch):
    labels, logits = batch
    loss = DiceCrossEntropy()
    expected = float(milletari_dice_loss(labels, logits)) + float(cross_entropy_loss(labels, logits))
    np.testing.assert_allclose(float(loss(labels, logits)), expected, rtol=1e-5)
    perfect = np.where(np.eye(2)[labels[..., 0]] > 0, 20.0, -20.0).astype(np.float32)
    assert float(loss(labels, perfect)) < 1e-5
    assert float(DiceCrossEntropy(dice="foreground")(labels, perfect)) < 1e-5


def test_dice_cross_entropy_accepts_bfloat16_logits_and_rejects_unknown_dice(batch):
    import tensorflow as tf

    labels, logits = batch
    value = DiceCrossEntropy()(labels, tf.cast(logits, tf.bfloat16))
    assert value.dtype == tf.float32
    with pytest.raises(ValueError, match="dice must be one of"):
        DiceCrossEntropy(dice="tversky")


def lesion_free_confident_item():
    labels = np.zeros((1, 2, 3, 3, 1), np.int32)
    logits = np.zeros((1, 2, 3, 3, 2), np.float32)
    logits[..., 0] = 8.0  # confidently background everywhere
    return labels, logits


def dice_value_and_gradient(loss, labels, logits):
    import tensorflow as tf

    logits = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        value = loss(labels, logits)
    return float(value), float(tf.reduce_max(tf.abs(tape.gradient(value, logits))))


def test_faimed3d_eps_rule_gives_lesion_free_item_a_constant_loss_without_gradient():
    labels, logits = lesion_free_confident_item()
    value, gradient = dice_value_and_gradient(
        lambda y, p: foreground_dice_loss(y, p, "denominator"), labels, logits)
    assert value == 1.0 and gradient == 0.0  # 2I / (S + eps) with I = 0
    value, gradient = dice_value_and_gradient(
        lambda y, p: foreground_dice_loss(y, p, "both"), labels, logits)
    assert value < 1.0 and gradient > 0.0  # (2I + eps) / (S + eps) still pulls towards empty


def test_milletari_loss_of_lesion_free_confident_item_is_one_half_under_faimed3d_rule():
    labels, logits = lesion_free_confident_item()
    # background Dice ~1, lesion Dice exactly 0: the mean over classes is 1/2
    assert float(milletari_dice_loss(labels, logits, "denominator")) == pytest.approx(0.5, abs=1e-3)
    assert float(milletari_dice_loss(labels, logits, "both")) < 0.5


def test_dice_cross_entropy_keeps_its_settings_through_keras_serialization():
    import tensorflow as tf

    loss = DiceCrossEntropy("foreground", ce_weight=0.5, dice_eps="both")
    restored = tf.keras.losses.deserialize(tf.keras.losses.serialize(loss))
    assert isinstance(restored, DiceCrossEntropy)
    assert (restored.dice, restored.ce_weight, restored.dice_eps) == ("foreground", 0.5, "both")
    with pytest.raises(ValueError, match="dice_eps"):
        DiceCrossEntropy(dice_eps="numerator")
