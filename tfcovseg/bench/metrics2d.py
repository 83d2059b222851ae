"""Bizopoulos et al.'s soft Dice loss and per-image test metrics (PAPERS.md section 2).

Metrics are per image at a threshold, then averaged over the test images:
sensitivity TP / (TP + FN + eps), specificity TN / (TN + FP + eps), Dice 2TP / (2TP + FP + FN +
eps), and all three are 1 for an image with TP + FP = 0 (nothing predicted), as the paper says.

The authors' code (``metrics`` in main.py) names (mask & ~prediction) "false_positive" and
(~mask & prediction) "false_negative" and applies the formulas above to those names: its Dice is
the same, but its all-ones rule fires when the *true mask* is empty, its "sensitivity" is
TP / (TP + FP) and its "specificity" TN / (TN + FN). ``convention="authors_code"`` reproduces
that, for comparing with the published numbers.
"""

from typing import Literal

import numpy as np

from tfcovseg.settings.bench import DiceLossForm

METRIC_NAMES = ("sensitivity", "specificity", "dice")

# (smooth, eps, squared, per_image) of 1 - (2 sum(y p) + smooth) / (sum y^k + sum p^k + eps)
DICE_LOSS_FORMS = {
    "paper": (0.0, 1e-5, True, False),  # the paper's equation (1), over the whole batch
    # the authors' paper-era losses.py (trained the released models): per image, linear
    # denominators, eps 1e-6, times "mask not empty" (lesion-free images give no loss), averaged
    "paper_era_code": (0.0, 1e-6, False, True),
    "later_code": (1.0, 1.0, False, False),  # segmentation_models_pytorch.utils.losses.DiceLoss()
}


def soft_dice_loss(y_true, y_pred, form: DiceLossForm = "paper"):
    """Soft Dice loss of a batch ``[B, H, W, 1]`` as one scalar, in the chosen ``form``."""
    import tensorflow as tf

    smooth, eps, squared, per_image = DICE_LOSS_FORMS[form]
    y_true = tf.cast(y_true, tf.float32)
    y_pred = tf.cast(y_pred, tf.float32)
    axes = (1, 2, 3) if per_image else None
    overlap = tf.reduce_sum(y_true * y_pred, axis=axes)
    power = 2.0 if squared else 1.0
    total = tf.reduce_sum(y_true**power, axis=axes) + tf.reduce_sum(y_pred**power, axis=axes)
    loss = 1.0 - (2.0 * overlap + smooth) / (total + eps)
    if not per_image:
        return loss
    has_mask = tf.cast(tf.reduce_sum(y_true, axis=axes) > 0, tf.float32)
    return tf.reduce_mean(loss * has_mask)


def confusion(prediction: np.ndarray, mask: np.ndarray) -> tuple[int, int, int, int]:
    """(TP, FP, FN, TN) of two boolean images."""
    prediction = np.asarray(prediction, bool)
    mask = np.asarray(mask, bool)
    tp = int(np.count_nonzero(prediction & mask))
    fp = int(np.count_nonzero(prediction & ~mask))
    fn = int(np.count_nonzero(~prediction & mask))
    tn = int(prediction.size - tp - fp - fn)
    return tp, fp, fn, tn


def image_scores(
    probability: np.ndarray,
    mask: np.ndarray,
    threshold: float = 0.5,
    eps: float = 1e-5,
    convention: Literal["paper", "authors_code"] = "paper",
) -> dict:
    """Sensitivity, specificity and Dice of one image (probabilities vs a binary mask)."""
    tp, fp, fn, tn = confusion(np.asarray(probability) > threshold, np.asarray(mask) > 0.5)
    if convention == "authors_code":
        fp, fn = fn, fp  # the code's names, then the paper's formulas on them
    if tp + fp == 0:
        return dict.fromkeys(METRIC_NAMES, 1.0)
    return {
        "sensitivity": tp / (tp + fn + eps),
        "specificity": tn / (tn + fp + eps),
        "dice": 2 * tp / (2 * tp + fp + fn + eps),
    }


def mean_scores(scores: list[dict]) -> dict:
    """The mean of each metric over images; NaN when there are none."""
    return {
        name: float(np.mean([s[name] for s in scores])) if scores else float("nan")
        for name in METRIC_NAMES
    }
