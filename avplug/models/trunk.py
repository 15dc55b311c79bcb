"""The ResNet-style trunk both built-in backbones share: stem modules, then stages of blocks.

:class:`ResNetTrunk` names its modules after the stem's keys and ``layer1`` .. ``layerN``, so the
backbones keep torchvision's state-dict keys; :func:`resnet_stages` builds the stages of a
ResNet-18 layout for any BasicBlock class (2-D or (2+1)D).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from avplug.models.layers import global_average_pool

# Channels of the four stages and blocks per stage of the 18-layer network.
RESNET18_STAGE_CHANNELS = (64, 128, 256, 512)
RESNET18_BLOCKS_PER_STAGE = (2, 2, 2, 2)


class ResNetTrunk(nn.Module):
    """A trunk: the ``stem`` modules applied in order, then the stages ``layer1`` .. ``layerN``.

    ``forward(x) -> [B, out_channels, ...]`` (the last feature map) and ``pooled(x) ->
    [B, out_channels]`` (its global average, for downstream heads).  A subclass sets
    ``input_dims`` and ``input_layout`` (what ``x`` must be, for the error message).
    """

    input_dims: int
    input_layout: str

    def __init__(self, stem: Mapping[str, nn.Module], stages: Sequence[nn.Module], out_channels: int) -> None:
        super().__init__()
        self.stem_names = tuple(stem)
        for name, module in stem.items():
            self.add_module(name, module)
        for index, stage in enumerate(stages, start=1):
            self.add_module(f"layer{index}", stage)
        self.num_stages = len(stages)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != self.input_dims:
            raise ValueError(f"{type(self).__name__} expects {self.input_layout}, got shape {tuple(x.shape)}")
        for name in self.stem_names:
            x = getattr(self, name)(x)
        for index in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{index}")(x)
        return x

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        return global_average_pool(self(x))


def resnet_stages(
    block: Callable[..., nn.Module],
    channels: Sequence[int],
    blocks_per_stage: Sequence[int],
    *,
    norm: Callable[[int], nn.Module],
    activation: Callable[[], nn.Module],
) -> list[nn.Sequential]:
    """One ``nn.Sequential`` of blocks per stage; stages after the first halve resolution in their first block.

    ``block(in_planes, planes, stride, norm=..., activation=...)`` builds one block; the first
    stage's input has ``channels[0]`` channels (the stem's output).
    """
    stages = []
    in_planes = channels[0]
    for index, (planes, blocks) in enumerate(zip(channels, blocks_per_stage)):
        stride = 1 if index == 0 else 2
        layer = [block(in_planes, planes, stride, norm=norm, activation=activation)]
        layer += [block(planes, planes, norm=norm, activation=activation) for _ in range(1, blocks)]
        stages.append(nn.Sequential(*layer))
        in_planes = planes
    return stages
