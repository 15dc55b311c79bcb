"""Clips of downstream videos and sounds: decoding, training augmentation, test-time views.

The recipe (paper sections 4.1 and 7.2; ``cfg.EVAL.DOWNSTREAM``):

- video training clip: FRAMES frames at FPS from a start drawn uniformly over the video; uint8 ->
  float in [0, 1] -> short side resized to a size drawn uniformly from SCALE_JITTER (bilinear,
  ``pytorchvideo.transforms.RandomShortSideScale``) -> random CROP x CROP crop -> horizontal flip
  with probability 1/2 -> color jitter (sigma COLOR_JITTER, the pretraining formulas) ->
  per-channel normalization with the pretraining statistics (``cfg.INPUT.VIDEO.MEAN/STD``);
- video test: NUM_CLIPS clips uniformly spaced (:func:`~avplug.evaluation.views.temporal_clip_starts`),
  each resized to short side TEST_SHORT_SIDE (0: CROP, so that the crops span the short side)
  and cut into NUM_CROPS crops along the long side (left, center, right): NUM_CLIPS x NUM_CROPS views;
- audio training clip: CLIP_SECONDS from a uniformly drawn start, mono at ``cfg.DATA.AUDIO_RATE``,
  log-mel with the pretraining front end (``cfg.INPUT.AUDIO``), one frequency band and one time band
  each masked with a width drawn uniformly up to MASK_FRACTION of the axis; no crop, no scale jitter;
- audio test: NUM_CLIPS clips uniformly spaced, log-mel, no masking.

Media are read through the ``cfg.DATA.DECODER`` entry of the DECODERS registry, on the file's own
timeline: clip starts count from the container's start time (1.4 s in a typical MPEG-TS file),
and audio is placed by its timestamps (a file joined with ``-c copy`` or missing packets stays in
sync).  A clip running past the end of the media repeats the last frame (video) or is padded
with silence (audio).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import av
import torch
from pytorchvideo.transforms import Div255, RandomShortSideScale
from torch import nn
from torch.utils.data import Dataset

import avplug  # noqa: F401  (the pytorchvideo shim must run before pytorchvideo is imported)
from avplug.data.audio import LogMelSpectrogram
from avplug.data.decoders import read_clips
from avplug.data.decoders.media import open_media
from avplug.data.errors import MediaError
from avplug.data.transforms import (
    ColorJitterVideo,
    NormalizeVideo,
    RandomCropVideo,
    ShortSideScale,
)
from avplug.evaluation.views import (
    random_clip_start,
    spatial_crops,
    temporal_clip_starts,
)
from registry import DECODERS


def media_span(path: str) -> tuple[float, float]:
    """``(start_s, duration_s)`` of a video or audio file from its container header (or its first
    stream): where its timeline starts, and how long it runs."""
    with open_media(path) as c:
        start = c.start_time / av.time_base if c.start_time is not None else 0.0
        if c.duration is not None and c.duration > 0:
            return start, c.duration / av.time_base
        for stream in list(c.streams.video) + list(c.streams.audio):
            if stream.duration is not None and stream.time_base is not None:
                return start, float(stream.duration * stream.time_base)
    raise MediaError(path, "its header states no duration")


class RandomHorizontalFlipVideo(nn.Module):
    """Mirror the last (W) dimension with probability ``p``, the same for every frame."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flip(-1) if float(torch.rand(())) < self.p else x


class TimeFrequencyMask(nn.Module):
    """Mask one band of the frequency axis AND one band of the time axis of a mel image ``[..., F, N]``.

    Each band's width is drawn uniformly from ``0 .. floor(max_fraction * length)`` and its start
    uniformly among the positions that fit; masked cells are set to the mean of the image (as the
    pretraining drop does).  SpecAugment-style masking for ESC-50 (paper: up to 50% of each axis).
    """

    def __init__(self, max_fraction: float) -> None:
        super().__init__()
        if not 0.0 <= max_fraction <= 1.0:
            raise ValueError(f"TimeFrequencyMask: max_fraction must be in [0, 1], got {max_fraction}")
        self.max_fraction = float(max_fraction)

    def _band(self, length: int) -> tuple[int, int]:
        width = int(torch.randint(0, math.floor(self.max_fraction * length) + 1, ()))
        start = int(torch.randint(0, length - width + 1, ()))
        return start, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean()
        x = x.clone()
        (f0, fw), (t0, tw) = self._band(x.shape[-2]), self._band(x.shape[-1])
        x[..., f0 : f0 + fw, :] = mean
        x[..., :, t0 : t0 + tw] = mean
        return x


class VideoTrainTransform(nn.Module):
    """uint8 ``[3, T, h, w]`` -> normalized float ``[3, T, crop, crop]``, randomly augmented."""

    def __init__(
        self, *, scale_range: Sequence[int], crop: int, color_jitter: float, mean: Sequence[float], std: Sequence[float]
    ) -> None:
        super().__init__()
        low, high = int(scale_range[0]), int(scale_range[1])
        if crop > low:
            raise ValueError(f"VideoTrainTransform: crop {crop} exceeds the smallest jittered short side {low}")
        self.to_float = Div255()
        self.scale = RandomShortSideScale(low, high)
        self.crop = RandomCropVideo(crop)
        self.flip = RandomHorizontalFlipVideo()
        self.jitter = ColorJitterVideo(color_jitter) if color_jitter > 0 else nn.Identity()
        self.normalize = NormalizeVideo(mean, std)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        x = self.crop(self.scale(self.to_float(video)))
        return self.normalize(self.jitter(self.flip(x)))


class VideoTestTransform(nn.Module):
    """uint8 ``[3, T, h, w]`` -> ``[num_crops, 3, T, crop, crop]``: resize, then crops along the long side."""

    def __init__(self, *, short_side: int, crop: int, num_crops: int, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if crop > short_side:
            raise ValueError(f"VideoTestTransform: crop {crop} exceeds the test short side {short_side}")
        self.to_float = Div255()
        self.scale = ShortSideScale(short_side)
        self.crop, self.num_crops = int(crop), int(num_crops)
        self.normalize = NormalizeVideo(mean, std)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        x = self.scale(self.to_float(video))
        return torch.stack([self.normalize(v) for v in spatial_crops(x, self.crop, self.num_crops)])


class AudioTransform(nn.Module):
    """waveform ``[S]`` -> log-mel ``[1, n_mels, 1 + S // hop]``, masked when ``mask_fraction > 0``."""

    def __init__(self, *, sample_rate: int, n_fft: int, hop_length: int, n_mels: int, mask_fraction: float) -> None:
        super().__init__()
        self.mel = LogMelSpectrogram(sample_rate, n_fft, hop_length, n_mels)
        self.mask = TimeFrequencyMask(mask_fraction) if mask_fraction > 0 else nn.Identity()

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.mask(self.mel(waveform.reshape(1, -1)))


class DownstreamClips(Dataset):
    """Clips of a downstream dataset's ``samples`` for training (one random clip) or testing (all views).

    ``dataset[i]`` is ``{"input": x, "label": int, "index": i}`` with ``x``:

    - training video ``[3, FRAMES, CROP, CROP]``; training audio ``[1, n_mels, frames]``;
    - test video ``[NUM_CLIPS * NUM_CROPS, 3, FRAMES, CROP, CROP]`` (clips outer, crops inner);
      test audio ``[NUM_CLIPS, 1, n_mels, frames]``.

    The decoder is built lazily in each loader worker; start times and durations are read once
    per file and cached.
    """

    def __init__(
        self,
        samples: Sequence[tuple[str, int]],
        *,
        modality: str,
        train: bool,
        decoder: str,
        transform: nn.Module,
        num_frames: int = 0,
        fps: float = 0.0,
        clip_seconds: float = 0.0,
        sample_rate: int = 0,
        num_clips: int = 1,
    ) -> None:
        if modality not in ("video", "audio"):
            raise ValueError(f"DownstreamClips: modality {modality!r} must be 'video' or 'audio'")
        self.samples = list(samples)
        self.modality, self.train = modality, bool(train)
        self.decoder_name = decoder
        DECODERS.get(decoder)  # fail now, naming the registered decoders, not in a worker
        self.transform = transform
        self.num_frames, self.fps = int(num_frames), float(fps)
        self.clip_seconds = num_frames / fps if modality == "video" else float(clip_seconds)
        self.sample_rate, self.num_clips = int(sample_rate), int(num_clips)
        self._decoder: Any = None
        self._spans: dict[str, tuple[float, float]] = {}

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def decoder(self) -> Any:
        if self._decoder is None:
            self._decoder = DECODERS.get(self.decoder_name)()
        return self._decoder

    def __getstate__(self) -> dict:  # decoders need not pickle: rebuild in each worker
        return {**self.__dict__, "_decoder": None}

    def span(self, path: str) -> tuple[float, float]:
        """:func:`media_span` of ``path``, cached."""
        if path not in self._spans:
            self._spans[path] = media_span(path)
        return self._spans[path]

    def starts(self, path: str) -> list[float]:
        """Clip start times (on the file's timeline) for this sample: one random start (training)
        or the uniform test clips."""
        origin, duration = self.span(path)
        if self.train:
            return [origin + random_clip_start(duration, self.clip_seconds)]
        return [origin + s for s in temporal_clip_starts(duration, self.clip_seconds, self.num_clips)]

    def _video(self, path: str, starts: list[float]) -> torch.Tensor:
        clips = read_clips(self.decoder, path, starts, self.num_frames, self.fps)
        return clips.permute(0, 4, 1, 2, 3)  # [clips, 3, T, H, W]

    def _audio(self, path: str, starts: list[float]) -> torch.Tensor:
        return torch.stack([self.decoder.read_audio(path, s, self.clip_seconds, self.sample_rate) for s in starts])

    def __getitem__(self, index: int) -> dict[str, Any]:
        path, label = self.samples[index]
        starts = self.starts(path)
        clips = self._video(path, starts) if self.modality == "video" else self._audio(path, starts)
        if self.train:
            x = self.transform(clips[0])
        else:
            views = [self.transform(c) for c in clips]
            x = torch.cat(views) if self.modality == "video" else torch.stack(views)
        return {"input": x, "label": int(label), "index": index}


def build_clip_transform(cfg, modality: str, train: bool) -> nn.Module:
    """The transform of ``cfg.EVAL.DOWNSTREAM`` for ``modality`` in training or test mode."""
    e = cfg.EVAL.DOWNSTREAM
    if modality == "video":
        v = cfg.INPUT.VIDEO
        if train:
            return VideoTrainTransform(
                scale_range=e.SCALE_JITTER, crop=e.CROP, color_jitter=e.COLOR_JITTER, mean=v.MEAN, std=v.STD
            )
        return VideoTestTransform(
            short_side=e.TEST_SHORT_SIDE or e.CROP, crop=e.CROP, num_crops=e.NUM_CROPS, mean=v.MEAN, std=v.STD
        )
    a = cfg.INPUT.AUDIO
    return AudioTransform(
        sample_rate=cfg.DATA.AUDIO_RATE, n_fft=a.N_FFT, hop_length=a.HOP, n_mels=a.MEL_BINS,
        mask_fraction=e.MASK_FRACTION if train else 0.0,
    )


def build_clip_dataset(cfg, samples: Sequence[tuple[str, int]], modality: str, train: bool) -> DownstreamClips:
    """:class:`DownstreamClips` over ``samples`` with the recipe of ``cfg``."""
    e = cfg.EVAL.DOWNSTREAM
    return DownstreamClips(
        samples,
        modality=modality,
        train=train,
        decoder=cfg.DATA.DECODER,
        transform=build_clip_transform(cfg, modality, train),
        num_frames=e.FRAMES,
        fps=e.FPS,
        clip_seconds=e.CLIP_SECONDS,
        sample_rate=cfg.DATA.AUDIO_RATE,
        num_clips=1 if train else e.NUM_CLIPS,
    )
