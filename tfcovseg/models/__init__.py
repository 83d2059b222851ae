"""Keras models: the R3D-18 encoder, the paper's 3D U-Net, their custom layers, weight conversion."""

from tfcovseg.models.convert import convert_weights, fetch_kinetics_weights
from tfcovseg.models.layers import InstanceNorm, ResizeLike
from tfcovseg.models.r3d18 import r3d18
from tfcovseg.models.unet3d import encoder_layers, freeze_encoder, unet3d, unfreeze_encoder

__all__ = [
    "InstanceNorm",
    "ResizeLike",
    "convert_weights",
    "encoder_layers",
    "fetch_kinetics_weights",
    "freeze_encoder",
    "r3d18",
    "unet3d",
    "unfreeze_encoder",
]
