"""R(2+1)D-18, the paper's video encoder f, with a width multiplier.

The topology is torchvision's ``torchvision.models.video.r2plus1d_18`` without its classifier:

- stem: a (2+1)D factorised 3x7x7 convolution, ``Conv3d(3, 45, (1, 7, 7), stride (1, 2, 2))`` then
  ``Conv3d(45, 64, (3, 1, 1))``, each followed by norm and activation;
- four stages of two BasicBlocks with 64 / 128 / 256 / 512 channels; stages 2-4 halve time, height
  and width in their first block (a strided ``Conv2Plus1D`` and a 1x1x1 strided projection
  shortcut); every 3x3x3 convolution is factorised into a 1x3x3 spatial and a 3x1x1 temporal
  convolution with ``midplanes = (in * out * 3 * 3 * 3) // (in * 3 * 3 + 3 * out)`` channels in
  between (computed from the block's input and output channels and used by both of its convs).

Module and parameter names equal torchvision's, so at width 1 a torchvision state dict (less
``fc.*``) loads with ``strict=True``.  A width multiplier ``w`` scales every channel count, the
stem's 45 mid-planes included (``round(c * w)``, at least 1); the block mid-planes are then
computed from the scaled channels.  At ``w = 1`` the model has 31,300,125 parameters.

``create_r2plus1d_18`` is the config-free factory (pytorchvideo style: keyword-only arguments,
callables for the norm and activation layers); the registered ``R2Plus1D18`` builder adapts a cfg
node (``cfg.MODEL.VIDEO``: ``WIDTH``) to it.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from avplug.models.layers import init_conv_weights, relu_inplace, scaled_channels
from avplug.models.trunk import RESNET18_BLOCKS_PER_STAGE, RESNET18_STAGE_CHANNELS, ResNetTrunk, resnet_stages
from registry import BACKBONES

STEM_MIDPLANES = 45


def block_midplanes(in_planes: int, out_planes: int) -> int:
    """Mid-planes of a factorised 3x3x3 conv: keeps the parameter count of the full 3-D conv."""
    return (in_planes * out_planes * 3 * 3 * 3) // (in_planes * 3 * 3 + 3 * out_planes)


class Conv2Plus1D(nn.Sequential):
    """A 3x3x3 convolution factorised into 1x3x3 (space) -> norm -> activation -> 3x1x1 (time)."""

    def __init__(
        self,
        in_planes: int,
        out_planes: int,
        midplanes: int,
        stride: int = 1,
        *,
        norm: Callable[[int], nn.Module],
        activation: Callable[[], nn.Module],
    ) -> None:
        super().__init__(
            nn.Conv3d(in_planes, midplanes, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False),
            norm(midplanes),
            activation(),
            nn.Conv3d(midplanes, out_planes, (3, 1, 1), stride=(stride, 1, 1), padding=(1, 0, 0), bias=False),
        )


class BasicBlock2Plus1D(nn.Module):
    """ResNet BasicBlock with (2+1)D convolutions: ``act(conv2(conv1(x)) + shortcut(x))``."""

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
        mid = block_midplanes(in_planes, planes)
        self.conv1 = nn.Sequential(
            Conv2Plus1D(in_planes, planes, mid, stride, norm=norm, activation=activation), norm(planes), activation()
        )
        self.conv2 = nn.Sequential(Conv2Plus1D(planes, planes, mid, norm=norm, activation=activation), norm(planes))
        self.relu = activation()
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv3d(in_planes, planes, kernel_size=1, stride=stride, bias=False), norm(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.conv2(self.conv1(x))
        out += residual
        return self.relu(out)


class R2Plus1D(ResNetTrunk):
    """A (2+1)D ResNet trunk: ``stem`` then ``layer1`` .. ``layer4``.

    ``forward(x [B, C_in, T, H, W]) -> [B, out_channels, T', H', W']`` (the last feature map) and
    ``pooled(x) -> [B, out_channels]`` (its global average, for downstream heads).  Build it with
    :func:`create_r2plus1d_18`.
    """

    input_dims = 5
    input_layout = "video [B, C, T, H, W]"

    def __init__(self, stem: nn.Module, stages: Sequence[nn.Module], out_channels: int) -> None:
        super().__init__({"stem": stem}, stages, out_channels)


def create_r2plus1d_18(
    *,
    width: float = 1.0,
    input_channels: int = 3,
    norm: Callable[[int], nn.Module] = nn.BatchNorm3d,
    activation: Callable[[], nn.Module] = relu_inplace,
) -> R2Plus1D:
    """R(2+1)D-18 (torchvision topology, no classifier) with every channel count scaled by ``width``.

    Args:
        width: channel multiplier (1.0: 64/128/256/512 stage channels, 45 stem mid-planes).
        input_channels: channels of the input video (3 for RGB).
        norm: ``norm(num_channels)`` builds a normalisation layer for 5-D maps.
        activation: ``activation()`` builds an activation layer.
    """
    stem_mid = scaled_channels(STEM_MIDPLANES, width)
    channels = [scaled_channels(c, width) for c in RESNET18_STAGE_CHANNELS]
    stem = nn.Sequential(
        nn.Conv3d(input_channels, stem_mid, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
        norm(stem_mid),
        activation(),
        nn.Conv3d(stem_mid, channels[0], (3, 1, 1), stride=(1, 1, 1), padding=(1, 0, 0), bias=False),
        norm(channels[0]),
        activation(),
    )
    stages = resnet_stages(BasicBlock2Plus1D, channels, RESNET18_BLOCKS_PER_STAGE, norm=norm, activation=activation)
    model = R2Plus1D(stem, stages, out_channels=channels[-1])
    init_conv_weights(model)
    return model


@BACKBONES.register(name="R2Plus1D18")
def build_r2plus1d_18(node) -> R2Plus1D:
    """BACKBONES builder: ``cfg.MODEL.VIDEO`` (``WIDTH``) -> :func:`create_r2plus1d_18`."""
    return create_r2plus1d_18(width=float(node.WIDTH))
