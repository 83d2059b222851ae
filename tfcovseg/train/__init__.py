"""Training: Bressem et al.'s recipe as Keras pieces and a resumable staged fit.

For your own ``model.fit``: ``FastaiAdam`` (optimizer), ``DiceCrossEntropy`` (loss) and the
callbacks ``OneCycle``, ``FreezeEncoder``, ``BestDiceCheckpoint``. ``tfcovseg train`` runs
``tfcovseg.train.run.train``.
"""

from tfcovseg.train.callbacks import BestDiceCheckpoint, FreezeEncoder, OneCycle
from tfcovseg.train.losses import (
    DiceCrossEntropy,
    cross_entropy_loss,
    foreground_dice_loss,
    milletari_dice_loss,
)
from tfcovseg.train.optimizer import FastaiAdam

__all__ = [
    "BestDiceCheckpoint",
    "DiceCrossEntropy",
    "FastaiAdam",
    "FreezeEncoder",
    "OneCycle",
    "cross_entropy_loss",
    "foreground_dice_loss",
    "milletari_dice_loss",
]
