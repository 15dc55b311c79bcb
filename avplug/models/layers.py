"""Small pieces shared by the built-in backbones and heads."""
from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn

# The activation the built-in factories use by default: torchvision's in-place ReLU, which saves
# one activation tensor per layer in training (ReLU's backward needs only its output).
relu_inplace: Callable[[], nn.Module] = functools.partial(nn.ReLU, inplace=True)


def scaled_channels(channels: int, width: float) -> int:
    """``channels`` scaled by the width multiplier ``width``, rounded, at least 1.

    ``width = 1`` gives ``channels`` exactly, so full-width models have the reference topology.
    """
    if width <= 0:
        raise ValueError(f"width multiplier must be positive, got {width}")
    return max(1, round(channels * width))


def global_average_pool(x: torch.Tensor) -> torch.Tensor:
    """Average a feature map ``[B, C, *spatial]`` over all its spatial axes: ``[B, C]``."""
    if x.dim() < 3:
        raise ValueError(f"expected a feature map [B, C, ...] with at least one spatial axis, got shape {tuple(x.shape)}")
    return x.mean(dim=tuple(range(2, x.dim())))


def init_conv_weights(module: nn.Module) -> None:
    """torchvision's ResNet initialisation: Kaiming-normal (fan out, ReLU) for every conv weight,
    zero conv biases.  Norm layers keep their own default (weight 1, bias 0 for BatchNorm)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
