"""Segmentation losses of Bressem et al.: Dice + pixel-wise cross-entropy, on float32 logits.

Labels are integer class maps ``[B, D, H, W, 1]`` (or ``[B, D, H, W]``); logits are
``[B, D, H, W, C]``. Both Dice forms come from the authors' library faimed3d (PAPERS.md,
"Loss"): the paper's Milletari Dice is the default, the authors' example notebook used the
foreground soft Dice.

Where the smoothing term sits (``dice_eps``): faimed3d divides ``2I / (S + eps)``
(``"denominator"``, the default), so a lesion-free item scores a constant Dice of 0 for the
lesion class, with no gradient however confident the prediction; ``"both"``, ``(2I + eps) /
(S + eps)``, scores such an item near 1 when it predicts nothing and keeps a gradient towards
predicting nothing (useful in patch mode, where many patches are lesion-free).
"""

import typing
from typing import Literal

import tensorflow as tf

DICE_EPS = 1e-7  # faimed3d DiceLoss smoothing term
SPATIAL_AXES = (1, 2, 3)  # D, H, W of [B, D, H, W, C]
DiceEps = Literal["denominator", "both"]
DICE_EPS_RULES = typing.get_args(DiceEps)


def _probabilities_and_one_hot(labels, logits):
    logits = tf.cast(logits, tf.float32)
    classes = tf.shape(logits)[-1]
    labels = tf.cast(labels, tf.int32)
    labels = tf.reshape(labels, tf.shape(logits)[:-1])
    return tf.nn.softmax(logits, axis=-1), tf.one_hot(labels, classes, dtype=tf.float32)


def smoothed_dice(intersection, denominator, dice_eps: DiceEps = "denominator"):
    """``2I / (S + eps)`` (faimed3d) or ``(2I + eps) / (S + eps)`` (``dice_eps="both"``)."""
    numerator_eps = DICE_EPS if dice_eps == "both" else 0.0
    return (2.0 * intersection + numerator_eps) / (denominator + DICE_EPS)


def milletari_dice_loss(labels, logits, dice_eps: DiceEps = "denominator"):
    """1 - Dice with squared denominators, per item and class over D,H,W, averaged incl. background.

    Dice = 2 sum(p g) / (sum(p^2) + sum(g^2) + eps) with p the softmax, g the one-hot target
    (Milletari et al. 2016; faimed3d's default DiceLoss); ``dice_eps`` as in the module docstring.
    """
    probs, target = _probabilities_and_one_hot(labels, logits)
    intersection = tf.reduce_sum(probs * target, axis=SPATIAL_AXES)
    denominator = tf.reduce_sum(probs**2, axis=SPATIAL_AXES) + tf.reduce_sum(
        target**2, axis=SPATIAL_AXES
    )
    return 1.0 - tf.reduce_mean(smoothed_dice(intersection, denominator, dice_eps))


def foreground_dice_loss(labels, logits, dice_eps: DiceEps = "denominator"):
    """1 - soft Dice of class 1 summed over the whole batch, no squares (the authors' example)."""
    probs, target = _probabilities_and_one_hot(labels, logits)
    probs, target = probs[..., 1], target[..., 1]
    intersection = tf.reduce_sum(probs * target)
    denominator = tf.reduce_sum(probs) + tf.reduce_sum(target)
    return 1.0 - smoothed_dice(intersection, denominator, dice_eps)


def cross_entropy_loss(labels, logits):
    """Pixel-wise softmax cross-entropy averaged over all voxels of the batch."""
    logits = tf.cast(logits, tf.float32)
    labels = tf.reshape(tf.cast(labels, tf.int32), tf.shape(logits)[:-1])
    per_voxel = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    return tf.reduce_mean(per_voxel)


DICE_LOSSES = {"milletari": milletari_dice_loss, "foreground": foreground_dice_loss}


@tf.keras.utils.register_keras_serializable(package="tfcovseg")
class DiceCrossEntropy(tf.keras.losses.Loss):
    """``dice_weight * Dice loss + ce_weight * cross-entropy`` (1:1 in the paper).

    Usable as ``model.compile(loss=DiceCrossEntropy())``. The value is already the loss of the
    whole batch, as fastai computes it; Keras' default reduction leaves a scalar unchanged and
    scales it correctly under a distribution strategy.
    """

    def __init__(
        self,
        dice: Literal["milletari", "foreground"] = "milletari",
        dice_weight: float = 1.0,
        ce_weight: float = 1.0,
        dice_eps: DiceEps = "denominator",
        name: str = "dice_cross_entropy",
        **kwargs,
    ):
        if dice not in DICE_LOSSES:
            raise ValueError(f"dice must be one of {sorted(DICE_LOSSES)}, got {dice!r}")
        if dice_eps not in DICE_EPS_RULES:
            raise ValueError(f"dice_eps must be one of {DICE_EPS_RULES}, got {dice_eps!r}")
        super().__init__(name=name, **kwargs)
        self.dice = dice
        self.dice_weight = dice_weight
        self.ce_weight = ce_weight
        self.dice_eps = dice_eps

    def call(self, y_true, y_pred):
        dice = DICE_LOSSES[self.dice](y_true, y_pred, self.dice_eps)
        return self.dice_weight * dice + self.ce_weight * cross_entropy_loss(y_true, y_pred)

    def get_config(self):
        config = super().get_config()
        config.update(dice=self.dice, dice_weight=self.dice_weight, ce_weight=self.ce_weight,
                      dice_eps=self.dice_eps)
        return config
