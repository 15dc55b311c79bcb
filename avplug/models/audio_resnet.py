"""ResNet-18 on the 1-channel log-mel image, the paper's audio encoder g, with a width multiplier.

The topology is torchvision's ``torchvision.models.resnet18`` without its classifier, on a
1-channel input: ``conv1`` 7x7 stride 2 -> norm -> activation -> 3x3 max-pool stride 2, then four
stages of two BasicBlocks with 64 / 128 / 256 / 512 channels (stages 2-4 halve both axes in their
first block, with a strided 1x1 projection shortcut).  The input ``[B, 1, n_mels, frames]`` is
treated as an image (height = mel bins, width = time), so the output feature map is
``[B, C, n_mels / 32, frames / 32]`` (rounded up).

Module and parameter names equal torchvision's, so a torchvision ResNet-18 state dict whose
``conv1`` has one input channel loads with ``strict=True`` (less ``fc.*``).  A width multiplier
``w`` scales every channel count (``round(c * w)``, at least 1).  At ``w = 1`` the model has
11,170,240 parameters.

``create_audio_resnet18`` is the config-free factory; the registered ``AudioResNet18`` builder
adapts ``cfg.MODEL.AUDIO`` (``WIDTH``) to it.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from avplug.models.layers import init_conv_weights, relu_inplace, scaled_channels
from avplug.models.trunk import RESNET18_BLOCKS_PER_STAGE, RESNET18_STAGE_CHANNELS, ResNetTrunk, resnet_stages
from registry import BACKBONES


class BasicBlock2d(nn.Module):
    """ResNet BasicBlock: ``act(bn2(conv2(act(bn1(conv1(x))))) + shortcut(x))`` with 3x3 convs."""

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int = 1,
        *,
        norm: Callable[[int], nn.Module],
        activation: Callable[[], nn.Module],
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm(planes)
        self.relu = activation()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = norm(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), norm(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += residual
        return self.relu(out)


class AudioResNet(ResNetTrunk):
    """A 2-D ResNet trunk on spectrogram images: ``conv1, bn1, relu, maxpool`` then ``layer1..N``.

    ``forward(x [B, C_in, F, T]) -> [B, out_channels, F', T']`` and
    ``pooled(x) -> [B, out_channels]``.  Build it with :func:`create_audio_resnet18`.
    """

    input_dims = 4
    input_layout = "a mel image [B, C, n_mels, frames]"

    def __init__(
        self,
        conv1: nn.Module,
        bn1: nn.Module,
        relu: nn.Module,
        maxpool: nn.Module,
        stages: Sequence[nn.Module],
        out_channels: int,
    ) -> None:
        super().__init__({"conv1": conv1, "bn1": bn1, "relu": relu, "maxpool": maxpool}, stages, out_channels)


def create_audio_resnet18(
    *,
    width: float = 1.0,
    input_channels: int = 1,
    norm: Callable[[int], nn.Module] = nn.BatchNorm2d,
    activation: Callable[[], nn.Module] = relu_inplace,
) -> AudioResNet:
    """ResNet-18 (torchvision topology, no classifier) for ``input_channels``-channel spectrograms.

    Args:
        width: channel multiplier (1.0: 64/128/256/512 stage channels).
        input_channels: channels of the input image (1 for a log-mel spectrogram).
        norm: ``norm(num_channels)`` builds a normalisation layer for 4-D maps.
        activation: ``activation()`` builds an activation layer.
    """
    channels = [scaled_channels(c, width) for c in RESNET18_STAGE_CHANNELS]
    stages = resnet_stages(BasicBlock2d, channels, RESNET18_BLOCKS_PER_STAGE, norm=norm, activation=activation)
    model = AudioResNet(
        conv1=nn.Conv2d(input_channels, channels[0], 7, stride=2, padding=3, bias=False),
        bn1=norm(channels[0]),
        relu=activation(),
        maxpool=nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        stages=stages,
        out_channels=channels[-1],
    )
    init_conv_weights(model)
    return model


@BACKBONES.register(name="AudioResNet18")
def build_audio_resnet18(node) -> AudioResNet:
    """BACKBONES builder: ``cfg.MODEL.AUDIO`` (``WIDTH``) -> :func:`create_audio_resnet18`."""
    return create_audio_resnet18(width=float(node.WIDTH))
