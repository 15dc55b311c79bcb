"""Encoders f (video), g (audio), projection heads, and the two-tower model.

Importing this package registers the built-ins: BACKBONES ``R2Plus1D18`` and ``AudioResNet18``,
HEADS ``ConvProjectionHead``.  :func:`build_model` builds the :class:`AudioVisualModel` of a cfg;
:mod:`avplug.models.export` gets the pretrained encoders out of a checkpoint.
"""
from avplug.models.audio_resnet import AudioResNet, create_audio_resnet18
from avplug.models.heads import ConvProjectionHead
from avplug.models.model import AudioVisualModel, build_model
from avplug.models.r2plus1d import R2Plus1D, create_r2plus1d_18

__all__ = [
    "AudioResNet",
    "AudioVisualModel",
    "ConvProjectionHead",
    "R2Plus1D",
    "build_model",
    "create_audio_resnet18",
    "create_r2plus1d_18",
]
