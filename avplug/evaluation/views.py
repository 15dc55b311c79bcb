"""Where the clips and crops of downstream training and testing come from (pure functions).

Test time follows the paper (section 4.1): NUM_CLIPS temporal clips uniformly spaced over the
video or audio, and for video NUM_CROPS spatial crops of each (left, center, right along the long
side), the predictions of all views averaged.  Training draws one clip uniformly at random.
"""
from __future__ import annotations

import torch


def temporal_clip_starts(duration_s: float, clip_s: float, num_clips: int) -> list[float]:
    """Start times (seconds) of ``num_clips`` clips of ``clip_s`` uniformly spaced over ``duration_s``.

    With ``num_clips > 1`` the first clip starts at 0 and the last at ``duration_s - clip_s``, the
    others evenly in between (they overlap when the media is shorter than ``num_clips * clip_s``).
    A single clip is centered: it starts at ``(duration_s - clip_s) / 2``.  Media shorter than one
    clip (``duration_s <= clip_s``) gives ``num_clips`` clips all starting at 0: they extend past
    the end, where the decoders repeat the last video frame and pad audio with silence (the
    DECODERS contract), so such a video still yields ``num_clips`` identical views.
    """
    if num_clips < 1:
        raise ValueError(f"temporal_clip_starts: num_clips = {num_clips}, need >= 1")
    if clip_s <= 0:
        raise ValueError(f"temporal_clip_starts: clip_s = {clip_s}, need > 0")
    slack = max(0.0, float(duration_s) - float(clip_s))
    if num_clips == 1:
        return [slack / 2]
    return [slack * i / (num_clips - 1) for i in range(num_clips)]


def random_clip_start(duration_s: float, clip_s: float, generator: torch.Generator | None = None) -> float:
    """A start time drawn uniformly from ``[0, max(0, duration_s - clip_s)]`` (training clips)."""
    slack = max(0.0, float(duration_s) - float(clip_s))
    return slack * float(torch.rand((), generator=generator))


def spatial_crop_offsets(height: int, width: int, size: int, num_crops: int = 3) -> list[tuple[int, int]]:
    """``(top, left)`` of ``num_crops`` square ``size`` crops spread along the long side.

    Along the long side the crops are evenly spaced from one end to the other (3 crops: left,
    center, right for landscape frames; top, center, bottom for portrait ones); along the short
    side they are centered.  One crop is the center crop.  Offsets round like pytorchvideo's
    ``uniform_crop`` (the center offset is ``ceil((length - size) / 2)``).
    """
    if num_crops < 1:
        raise ValueError(f"spatial_crop_offsets: num_crops = {num_crops}, need >= 1")
    if size > min(height, width):
        raise ValueError(f"spatial_crop_offsets: a {size}x{size} crop does not fit a {height}x{width} frame")

    def spread(length: int) -> list[int]:
        slack = length - size
        if num_crops == 1:
            return [-(-slack // 2)]
        return [-(-slack * i // (num_crops - 1)) for i in range(num_crops)]

    def center(length: int) -> int:
        return -(-(length - size) // 2)

    if width >= height:
        return [(center(height), left) for left in spread(width)]
    return [(top, center(width)) for top in spread(height)]


def spatial_crops(video: torch.Tensor, size: int, num_crops: int = 3) -> list[torch.Tensor]:
    """The crops of :func:`spatial_crop_offsets` of a video whose last two dims are ``H, W``.

    Returns ``num_crops`` views ``[..., size, size]`` (slices, no copy), in offset order (left,
    center, right for landscape frames).
    """
    height, width = int(video.shape[-2]), int(video.shape[-1])
    return [
        video[..., top : top + size, left : left + size]
        for top, left in spatial_crop_offsets(height, width, size, num_crops)
    ]
