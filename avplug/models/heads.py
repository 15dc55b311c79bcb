"""The paper's projection heads h_f and h_g.

Section 3: "two convolution layers, separated by Batch Normalization and ReLU, followed by global
average pooling", mapping a backbone feature map to the d-dimensional joint embedding space.  Both
convolutions have kernel size 1.

One head class serves video (``[B, C, T, H, W]``) and audio (``[B, C, F, T]``) feature maps, and any
other number of spatial axes: a kernel-1 convolution is the same linear map ``W x + b`` applied to
the channel vector at every position, and BatchNorm over a ``[B, C, *spatial]`` map normalises each
channel with statistics over the batch and all positions.  The head therefore flattens the
positions, ``[B, C, *S] -> [B * N, C]``, and applies ``nn.Linear`` (the kernel-1 convolution; its
weight ``[out, in]`` is a ``Conv3d``/``Conv2d`` kernel-1 weight without the trailing 1s) and
``BatchNorm1d`` (identical statistics and running averages to ``BatchNorm3d``/``BatchNorm2d``).
The second convolution is linear, so it commutes with the average: the head pools first and then
applies it to ``[B, hidden]`` instead of to every position, which is the same function at a
fraction of the cost.  For a channels-last feature map the flattening is a view, not a copy.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from avplug.models.layers import relu_inplace
from registry import HEADS


class ConvProjectionHead(nn.Module):
    """``GAP(conv2(act(norm(conv1(x)))))`` with kernel-1 convolutions: ``[B, C, *S] -> [B, dim]``.

    Args:
        in_channels: channels ``C`` of the backbone feature map.
        dim: output embedding dimension d.
        hidden_dim: channels between the two convolutions (0: ``in_channels``).
        norm: ``norm(num_channels)`` builds a normalisation layer for ``[N, channels]`` inputs.
        activation: ``activation()`` builds an activation layer.

    ``conv1`` has no bias (the norm that follows removes it); ``conv2`` has one.
    """

    def __init__(
        self,
        in_channels: int,
        dim: int,
        *,
        hidden_dim: int = 0,
        norm: Callable[[int], nn.Module] = nn.BatchNorm1d,
        activation: Callable[[], nn.Module] = relu_inplace,
    ) -> None:
        super().__init__()
        if in_channels < 1 or dim < 1 or hidden_dim < 0:
            raise ValueError(
                f"ConvProjectionHead needs in_channels >= 1, dim >= 1 and hidden_dim >= 0; "
                f"got {in_channels}, {dim}, {hidden_dim}"
            )
        hidden = hidden_dim or in_channels
        self.in_channels, self.hidden_dim, self.dim = in_channels, hidden, dim
        self.conv1 = nn.Linear(in_channels, hidden, bias=False)
        self.norm = norm(hidden)
        self.act = activation()
        self.conv2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 3 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"ConvProjectionHead expects a feature map [B, {self.in_channels}, ...] with at least one "
                f"spatial axis, got shape {tuple(x.shape)}"
            )
        batch = x.shape[0]
        positions = x.movedim(1, -1).reshape(-1, self.in_channels)  # [B * N, C]
        hidden = self.act(self.norm(self.conv1(positions)))  # [B * N, hidden]
        pooled = hidden.reshape(batch, -1, self.hidden_dim).mean(dim=1)  # [B, hidden]
        return self.conv2(pooled)  # [B, dim]


@HEADS.register(name="ConvProjectionHead")
def build_conv_projection_head(node, in_channels: int) -> ConvProjectionHead:
    """HEADS builder: ``cfg.MODEL.HEAD`` (``DIM``, ``HIDDEN_DIM``) -> :class:`ConvProjectionHead`."""
    return ConvProjectionHead(in_channels, int(node.DIM), hidden_dim=int(node.HIDDEN_DIM))
