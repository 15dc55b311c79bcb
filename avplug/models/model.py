"""The two-tower audio-visual model: ``z_v = h_f(f(v))``, ``z_a = h_g(g(a))``."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

import registry
from registry import BACKBONES, HEADS

_CHANNELS_LAST = (torch.channels_last, torch.channels_last_3d)


class AudioVisualModel(nn.Module):
    """Video encoder f and audio encoder g, each followed by its projection head.

    ``forward(video [B, 3, T, H, W], audio [B, 1, n_mels, frames]) -> (z_video [B, d],
    z_audio [B, d])``; row ``i`` of both is the positive pair of sample ``i``.  After pretraining
    the heads are discarded and ``video_backbone`` / ``audio_backbone`` are fine-tuned (see
    :mod:`avplug.models.export`).

    Memory format: ``model.to(memory_format=torch.channels_last_3d)`` (or ``torch.channels_last``)
    converts the video tower to ``channels_last_3d`` and the audio tower to ``channels_last``, the
    channels-last layout of each tower's rank (plain ``nn.Module.to`` would fail on the audio
    tower's 4-D weights).  Convolutions then produce channels-last feature maps whatever the
    layout of the input.  Device and dtype arguments are applied to the whole model as usual.
    """

    def __init__(
        self,
        video_backbone: nn.Module,
        audio_backbone: nn.Module,
        video_head: nn.Module,
        audio_head: nn.Module,
    ) -> None:
        super().__init__()
        self.video_backbone = video_backbone
        self.audio_backbone = audio_backbone
        self.video_head = video_head
        self.audio_head = audio_head

    def embed_video(self, video: torch.Tensor) -> torch.Tensor:
        """``h_f(f(video))``: ``[B, 3, T, H, W] -> [B, d]``."""
        return self.video_head(self.video_backbone(video))

    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """``h_g(g(audio))``: ``[B, 1, n_mels, frames] -> [B, d]``."""
        return self.audio_head(self.audio_backbone(audio))

    def forward(self, video: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if video.shape[0] != audio.shape[0]:
            raise ValueError(
                f"video and audio batches differ in size: {tuple(video.shape)} vs {tuple(audio.shape)}"
            )
        return self.embed_video(video), self.embed_audio(audio)

    def to(self, *args: Any, **kwargs: Any) -> AudioVisualModel:
        memory_format = kwargs.pop("memory_format", None)
        if memory_format not in _CHANNELS_LAST:
            if memory_format is not None:
                kwargs["memory_format"] = memory_format
            return super().to(*args, **kwargs)
        if args or kwargs:
            super().to(*args, **kwargs)
        for module in (self.video_backbone, self.video_head):
            module.to(memory_format=torch.channels_last_3d)
        for module in (self.audio_backbone, self.audio_head):
            module.to(memory_format=torch.channels_last)
        return self


def _check_backbone(backbone: nn.Module, key: str) -> int:
    channels = getattr(backbone, "out_channels", None)
    if not isinstance(channels, int) or channels < 1:
        raise TypeError(
            f"{key}: the backbone {type(backbone).__name__} has no positive int attribute out_channels "
            f"(got {channels!r}); the BACKBONES contract requires it"
        )
    if not callable(getattr(backbone, "pooled", None)):
        raise TypeError(f"{key}: the backbone {type(backbone).__name__} has no pooled(x) method (BACKBONES contract)")
    return channels


def build_model(cfg) -> AudioVisualModel:
    """Build f, g (``cfg.MODEL.VIDEO`` / ``cfg.MODEL.AUDIO``) and h_f, h_g (``cfg.MODEL.HEAD``)."""
    video_backbone = registry.build(BACKBONES, cfg.MODEL.VIDEO, expected_type=nn.Module)
    audio_backbone = registry.build(BACKBONES, cfg.MODEL.AUDIO, expected_type=nn.Module)
    video_channels = _check_backbone(video_backbone, f"MODEL.VIDEO.NAME = {cfg.MODEL.VIDEO.NAME!r}")
    audio_channels = _check_backbone(audio_backbone, f"MODEL.AUDIO.NAME = {cfg.MODEL.AUDIO.NAME!r}")
    video_head = registry.build(HEADS, cfg.MODEL.HEAD, video_channels, expected_type=nn.Module)
    audio_head = registry.build(HEADS, cfg.MODEL.HEAD, audio_channels, expected_type=nn.Module)
    return AudioVisualModel(video_backbone, audio_backbone, video_head, audio_head)
