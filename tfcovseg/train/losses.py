"""Segmentation losses of Bressem et al.: Dice + pixel-wise cross-entropy, on float32 logits.

Labels are integer class maps ``[B, D, H, W, 1]`` (or ``[B, D, H, W]``); logits are
``[B, D, H, W, C]``. Both Dice forms come from the authors' library faimed3d (PAPERS.md,
"Loss"): the paper's Milletari Dice is the default, the authors' example notebook used the
foreground soft Dice.
"""

from typing import Literal

import tensorflow as tf

DICE_EPS = 1e-7  # faimed3d DiceLoss smoothing term
SPATIAL_AXES = (1, 2, 3)  # D, H, W of [B, D, H, W, C]


def _probabilities_and_one_hot(labels, logits):
    logits = tf.cast(logits, tf.float32)
    classes = tf.shape(logits)[-1]
    labels = tf.cast(labels, tf.int32)
    labels = tf.reshape(labels, tf.shape(logits)[:-1])
    return tf.nn.softmax(logits, axis=-1), tf.one_hot(labels, classes, dtype=tf.float32)


def milletari_dice_loss(labels, logits):
    """1 - Dice with squared denominators, per item and class over D,H,W, averaged incl. background.

    Dice = (2 sum(p g) + eps) / (sum(p^2) + sum(g^2) + eps) with p the softmax, g the one-hot
    target (Milletari et al. 2016; faimed3d's default DiceLoss).
    """
    probs, target = _probabilities_and_one_hot(labels, logits)
    intersection = tf.reduce_sum(probs * target, axis=SPATIAL_AXES)
    denominator = tf.reduce_sum(probs**2, axis=SPATIAL_AXES) + tf.reduce_sum(
        target**2, axis=SPATIAL_AXES
    )
    dice = (2.0 * intersection + DICE_EPS) / (denominator + DICE_EPS)
    return 1.0 - tf.reduce_mean(dice)


def foreground_dice_loss(labels, logits):
    """1 - soft Dice of class 1 summed over the whole batch, no squares (the authors' example)."""
    probs, target = _probabilities_and_one_hot(labels, logits)
    probs, target = probs[..., 1], target[..., 1]
    intersection = tf.reduce_sum(probs * target)
    denominator = tf.reduce_sum(probs) + tf.reduce_sum(target)
    return 1.0 - (2.0 * intersection + DICE_EPS) / (denominator + DICE_EPS)


def cross_entropy_loss(labels, logits):
    """Pixel-wise softmax cross-entropy averaged over all voxels of the batch."""
    logits = tf.cast(logits, tf.float32)
    labels = tf.reshape(tf.cast(labels, tf.int32), tf.shape(logits)[:-1])
    per_voxel = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    return tf.reduce_mean(per_voxel)


DICE_LOSSES = {"milletari": milletari_dice_loss, "foreground": foreground_dice_loss}


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
        name: str = "dice_cross_entropy",
    ):
        if dice not in DICE_LOSSES:
            raise ValueError(f"dice must be one of {sorted(DICE_LOSSES)}, got {dice!r}")
        super().__init__(name=name)
        self.dice = dice
        self.dice_weight = dice_weight
        self.ce_weight = ce_weight

    def call(self, y_true, y_pred):
        dice = DICE_LOSSES[self.dice](y_true, y_pred)
        return self.dice_weight * dice + self.ce_weight * cross_entropy_loss(y_true, y_pred)

    def get_config(self):
        config = super().get_config()
        config.update(dice=self.dice, dice_weight=self.dice_weight, ce_weight=self.ce_weight)
        return config
