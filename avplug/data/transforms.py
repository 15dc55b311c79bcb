"""Pretraining transforms: the paper's video and audio augmentation, per sample or batched on a device.

The recipe (paper section 4.1; ``cfg.INPUT``):

- video: uint8 frames -> float in [0, 1] -> resize the short side to ``SHORT_SIDE``
  (``pytorchvideo.transforms.ShortSideScale``, bilinear) -> random ``CROP x CROP`` crop -> optional
  color jitter -> per-channel normalization ``(x - MEAN) / STD`` (defaults 0.45 / 0.225, the
  Kinetics statistics of pytorchvideo's video models);
- color jitter with sigma: brightness, contrast and saturation factors each drawn uniformly from
  ``[max(0, 1 - sigma), 1 + sigma]`` and applied in that fixed order (torchvision's formulas;
  contrast blends with the clip's mean gray level); sigma 0 is the identity and draws nothing;
- audio: waveform -> log-mel image (:class:`avplug.data.audio.LogMelSpectrogram`) -> drop one
  contiguous band of up to ``DROP_FRACTION`` of EITHER the frequency axis or the time axis (the axis
  is chosen with probability 1/2, the band width uniformly in ``0 .. floor(DROP_FRACTION * length)``,
  its start uniformly among the positions that fit); the band is set to the mean of that sample's
  log-mel image, the value carrying no information about the sample.

Every random module is small and single-purpose, pytorchvideo style: ``forward(x)`` draws its
parameters from torch's global RNG, so it composes with ``pytorchvideo.transforms.ApplyTransformToKey``
and ``torchvision.transforms.Compose``.  For reproducible training, drawing and applying are
separate: ``draw(shape, generator)`` returns the parameters of one sample as plain numbers,
``apply(x, params)`` applies them to one sample and ``apply_batch(x, params)`` to a batch whose
parameters are 1-D tensors (one entry per sample) -- vectorized, without a loop over the batch.

:class:`PretrainTransform` chains them.  Two paths produce the same distribution, in fact the same
tensors for the same parameters (up to float rounding):

- worker path (``cfg.INPUT.ON_DEVICE False``): the dataset draws each sample's parameters from a
  generator seeded by (seed, title, snippet, epoch) and applies the whole transform in the loader
  worker (:func:`build_pretrain_transform`);
- device path (``cfg.INPUT.ON_DEVICE True``): the dataset draws the same parameters but returns raw
  uint8 video ``[3, T, h, w]`` and the waveform ``[1, S]`` with them; :func:`build_batch_transform`
  then applies the transform batched on the training device inside the train step.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from pytorchvideo.transforms import ShortSideScale as _PtvShortSideScale
from torch import nn

from avplug.data.audio import LogMelSpectrogram, num_frames

Params = Mapping[str, float]
BatchParams = Mapping[str, torch.Tensor]

#: ITU-R 601-2 luma weights, as torchvision's ``rgb_to_grayscale``.
_GRAY_WEIGHTS = (0.299, 0.587, 0.114)


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _randint(low: int, high: int, generator: torch.Generator | None) -> int:
    """An integer uniformly in ``low .. high`` (both included)."""
    return int(torch.randint(low, high + 1, (), generator=generator))


def stack_params(params: Sequence[Params], device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """Per-sample parameters -> one 1-D tensor per name (float32 for floats, int64 for ints)."""
    if not params:
        return {}
    return {
        k: torch.tensor([p[k] for p in params], dtype=torch.float32 if isinstance(v, float) else torch.int64, device=device)
        for k, v in params[0].items()
    }


def short_side_scaled_size(height: int, width: int, size: int) -> tuple[int, int]:
    """``(height, width)`` after :class:`ShortSideScale` ``(size)``, pytorchvideo's rounding."""
    if width < height:
        return math.floor(height / width * size), size
    return size, math.floor(width / height * size)


class ShortSideScale(_PtvShortSideScale):
    """``pytorchvideo.transforms.ShortSideScale`` for a clip ``[C, T, H, W]`` or a batch ``[B, C, T, H, W]``.

    A float clip whose short side already has ``size`` pixels is returned as it is: a bilinear
    resize to the same size is the identity, so skipping it changes nothing but the cost (the
    snippet store usually keeps video at exactly the training short side).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) == self._size:
            return x
        if x.dim() == 5:  # interpolation is independent per (sample, channel): fold them together
            return super().forward(x.flatten(0, 1)).unflatten(0, x.shape[:2])
        return super().forward(x)


class ToFloat01(nn.Module):
    """uint8 pixels -> contiguous float32 in [0, 1] (``x / 255``), any shape; never modifies its input.

    Converts first and divides in place: on a cropped (strided) view this is about twice as fast
    as pytorchvideo's ``Div255``, which divides the uint8 view directly.  The result is contiguous
    whatever the input's strides: decoders hand over ``[T, H, W, 3]`` frames viewed as
    ``[3, T, H, W]``, and the broadcasts that follow (normalization, jitter) run about 10x slower
    on that channels-last layout than on a contiguous copy.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.float32, memory_format=torch.contiguous_format, copy=True).div_(255.0)


class NormalizeVideo(nn.Module):
    """``(x - mean) / std`` per RGB channel of ``[3, T, H, W]`` or ``[B, 3, T, H, W]`` float video.

    ``inplace=True`` overwrites ``x`` (as torchvision's ``Normalize``): for a pipeline that owns
    its tensor it saves an allocation, whose page faults cost more than the arithmetic.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], inplace: bool = False) -> None:
        super().__init__()
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"NormalizeVideo needs 3 means and 3 positive stds, got {mean}, {std}")
        self.inplace = bool(inplace)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(3, 1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(3, 1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self.mean.to(x.device), self.std.to(x.device)
        return (x.sub_(mean) if self.inplace else x - mean).div_(std)


class RandomTransform(nn.Module):
    """A transform whose randomness is drawn explicitly: ``forward(x) = apply(x, draw(x.shape))``."""

    def draw(self, shape: Sequence[int], generator: torch.Generator | None = None) -> dict[str, Any]:
        """Parameters for one sample of this ``shape`` (python numbers), from ``generator``."""
        raise NotImplementedError

    def apply_batch(self, x: torch.Tensor, params: BatchParams) -> torch.Tensor:
        """Apply per-sample parameters (1-D tensors of length ``B``) to a batch ``x[B, ...]``."""
        raise NotImplementedError

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        """Apply one sample's parameters to one sample (the same arithmetic as ``apply_batch``)."""
        return self.apply_batch(x.unsqueeze(0), stack_params([params], x.device)).squeeze(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.apply(x, self.draw(x.shape))


class RandomCropVideo(RandomTransform):
    """A random ``size x size`` crop of the last two (H, W) dimensions, the same for every frame.

    Parameters: ``crop_top`` in ``0 .. H - size`` and ``crop_left`` in ``0 .. W - size``, uniform.
    Works on any dtype (uint8 included).
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = int(size)

    def extra_repr(self) -> str:
        return f"size={self.size}"

    def draw(self, shape: Sequence[int], generator: torch.Generator | None = None) -> dict[str, Any]:
        height, width = int(shape[-2]), int(shape[-1])
        if min(height, width) < self.size:
            raise ValueError(f"RandomCropVideo: cannot crop {self.size}x{self.size} from frames of {height}x{width}")
        return {
            "crop_top": _randint(0, height - self.size, generator),
            "crop_left": _randint(0, width - self.size, generator),
        }

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        top, left = int(params["crop_top"]), int(params["crop_left"])
        return x[..., top : top + self.size, left : left + self.size]

    def apply_batch(self, x: torch.Tensor, params: BatchParams) -> torch.Tensor:
        b = x.shape[0]
        offsets = torch.arange(self.size, device=x.device)
        rows = params["crop_top"].to(x.device).view(b, 1) + offsets  # [B, size]
        cols = params["crop_left"].to(x.device).view(b, 1) + offsets
        batch = torch.arange(b, device=x.device).view(b, 1, 1)
        # Advanced indices around the middle slices put their broadcast dims [B, size, size] first.
        middle = (slice(None),) * (x.dim() - 3)
        out = x[(batch,) + middle + (rows.view(b, self.size, 1), cols.view(b, 1, self.size))]
        return out.permute(0, *range(3, x.dim()), 1, 2).contiguous()


class ColorJitterVideo(RandomTransform):
    """Brightness, contrast and saturation jitter of float video in [0, 1], channel dim -4 (RGB).

    Factors are drawn uniformly from ``[max(0, 1 - sigma), 1 + sigma]`` (the paper's sigma) and
    applied in the fixed order brightness, contrast, saturation, each clamped to [0, 1]:
    brightness ``x * b``; contrast ``c * x + (1 - c) * mean gray of the clip``; saturation
    ``s * x + (1 - s) * gray``.  With ``sigma = 0`` every factor is 1: the identity.
    """

    def __init__(self, sigma: float) -> None:
        super().__init__()
        if sigma < 0:
            raise ValueError(f"ColorJitterVideo: sigma must be >= 0, got {sigma}")
        self.sigma = float(sigma)
        self.register_buffer("gray_weights", torch.tensor(_GRAY_WEIGHTS).view(3, 1, 1, 1), persistent=False)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}"

    @property
    def factor_range(self) -> tuple[float, float]:
        return max(0.0, 1.0 - self.sigma), 1.0 + self.sigma

    def draw(self, shape: Sequence[int], generator: torch.Generator | None = None) -> dict[str, Any]:
        low, high = self.factor_range
        return {name: _uniform(low, high, generator) for name in ("brightness", "contrast", "saturation")}

    def apply_batch(self, x: torch.Tensor, params: BatchParams) -> torch.Tensor:
        view = (x.shape[0],) + (1,) * (x.dim() - 1)
        weights = self.gray_weights.to(device=x.device, dtype=x.dtype)

        def factor(name: str) -> torch.Tensor:
            return params[name].to(device=x.device, dtype=x.dtype).view(view)

        def gray(y: torch.Tensor) -> torch.Tensor:
            return (y * weights).sum(dim=-4, keepdim=True)

        x = (x * factor("brightness")).clamp_(0.0, 1.0)
        c = factor("contrast")
        mean_gray = gray(x).mean(dim=tuple(range(1, x.dim())), keepdim=True)
        x = (c * x + (1.0 - c) * mean_gray).clamp_(0.0, 1.0)
        s = factor("saturation")
        return (s * x + (1.0 - s) * gray(x)).clamp_(0.0, 1.0)


class RandomAxisDrop(RandomTransform):
    """Drop one contiguous band of the frequency OR the time axis of a (log-)mel image ``[..., F, N]``.

    Parameters: ``drop_axis`` (0 = frequency / mel bins, 1 = time / frames; probability 1/2 each),
    ``drop_width`` uniform in ``0 .. floor(max_fraction * length)`` and ``drop_start`` uniform in
    ``0 .. length - width``.  The band is set to the mean of the sample's image (over all of its
    dimensions, computed before the drop).
    """

    def __init__(self, max_fraction: float) -> None:
        super().__init__()
        if not 0.0 <= max_fraction < 1.0:
            raise ValueError(f"RandomAxisDrop: max_fraction must be in [0, 1), got {max_fraction}")
        self.max_fraction = float(max_fraction)

    def extra_repr(self) -> str:
        return f"max_fraction={self.max_fraction}"

    def draw(self, shape: Sequence[int], generator: torch.Generator | None = None) -> dict[str, Any]:
        axis = _randint(0, 1, generator)
        length = int(shape[-2] if axis == 0 else shape[-1])
        width = _randint(0, math.floor(self.max_fraction * length), generator)
        return {"drop_axis": axis, "drop_start": _randint(0, length - width, generator), "drop_width": width}

    def apply_batch(self, x: torch.Tensor, params: BatchParams) -> torch.Tensor:
        b, (n_freq, n_time) = x.shape[0], x.shape[-2:]
        axis, start, width = (params[k].to(x.device).view(b, 1) for k in ("drop_axis", "drop_start", "drop_width"))

        def band(length: int, on_axis: int) -> torch.Tensor:  # [B, length] bool
            pos = torch.arange(length, device=x.device).view(1, length)
            return (axis == on_axis) & (pos >= start) & (pos < start + width)

        mask = band(n_freq, 0).view(b, n_freq, 1) | band(n_time, 1).view(b, 1, n_time)
        mask = mask.view((b,) + (1,) * (x.dim() - 3) + (n_freq, n_time))
        mean = x.mean(dim=tuple(range(1, x.dim())), keepdim=True)
        return torch.where(mask, mean, x)


class PretrainTransform(nn.Module):
    """The whole pretraining transform of one snippet (see the module docstring for the recipe).

    Config-free; :func:`build_pretrain_transform` adapts a cfg to it.  Input of the sample path:
    video uint8 ``[3, T, h, w]`` (RGB) and waveform float ``[1, S]``; output video float
    ``[3, T, crop, crop]`` and audio float ``[1, n_mels, 1 + S // hop_length]``.  The batched path
    takes the same with a leading batch dimension.
    """

    def __init__(
        self,
        *,
        short_side: int,
        crop: int,
        color_jitter: float,
        mean: Sequence[float],
        std: Sequence[float],
        sample_rate: int,
        n_fft: int,
        hop_length: int,
        n_mels: int,
        drop_fraction: float,
    ) -> None:
        super().__init__()
        if crop > short_side:
            raise ValueError(f"PretrainTransform: crop {crop} is larger than the resized short side {short_side}")
        self.short_side = int(short_side)
        self.to_float = ToFloat01()
        self.scale = ShortSideScale(self.short_side)
        self.crop = RandomCropVideo(crop)
        self.jitter = ColorJitterVideo(color_jitter) if color_jitter > 0 else None
        self.normalize = NormalizeVideo(mean, std, inplace=True)  # its input is always a fresh float copy
        self.mel = LogMelSpectrogram(sample_rate, n_fft, hop_length, n_mels)
        self.drop = RandomAxisDrop(drop_fraction)

    # ----------------------------------------------------------------------------- parameters
    def draw(
        self, video_shape: Sequence[int], audio_shape: Sequence[int], generator: torch.Generator | None = None
    ) -> dict[str, Any]:
        """One sample's parameters for raw video of ``video_shape`` (``[3, T, h, w]``) and audio of
        ``audio_shape`` (``[1, S]``), drawn in a fixed order: crop, jitter, drop."""
        height, width = short_side_scaled_size(int(video_shape[-2]), int(video_shape[-1]), self.short_side)
        params = self.crop.draw((height, width), generator)
        if self.jitter is not None:
            params.update(self.jitter.draw((), generator))
        mel_shape = (self.mel.n_mels, num_frames(int(audio_shape[-1]), self.mel.hop_length))
        params.update(self.drop.draw(mel_shape, generator))
        return params

    # ----------------------------------------------------------------------------- one sample
    def _needs_resize(self, x: torch.Tensor) -> bool:
        return min(x.shape[-2:]) != self.short_side

    def apply_video(self, video: torch.Tensor, params: Params) -> torch.Tensor:
        """uint8 ``[3, T, h, w]`` -> normalized float ``[3, T, crop, crop]``."""
        if self._needs_resize(video):
            x = self.crop.apply(self.scale(self.to_float(video)), params)
        else:  # cropping uint8 first is exact and converts 2-4x fewer pixels
            x = self.to_float(self.crop.apply(video, params))
        if self.jitter is not None:
            x = self.jitter.apply(x, params)
        return self.normalize(x)

    def apply_audio(self, waveform: torch.Tensor, params: Params) -> torch.Tensor:
        """waveform ``[1, S]`` -> log-mel ``[1, n_mels, frames]`` with one band dropped."""
        return self.drop.apply(self.mel(waveform), params)

    def forward(self, sample: dict, generator: torch.Generator | None = None) -> dict:
        """Transform ``sample["video"]`` and ``sample["audio"]`` in place with freshly drawn parameters."""
        params = self.draw(sample["video"].shape, sample["audio"].shape, generator)
        sample["video"] = self.apply_video(sample["video"], params)
        sample["audio"] = self.apply_audio(sample["audio"], params)
        return sample

    # ----------------------------------------------------------------------------- batched
    def apply_video_batch(self, video: torch.Tensor, params: BatchParams) -> torch.Tensor:
        """uint8 ``[B, 3, T, h, w]`` -> normalized float ``[B, 3, T, crop, crop]``."""
        if self._needs_resize(video):
            x = self.crop.apply_batch(self.scale(self.to_float(video)), params)
        else:
            x = self.to_float(self.crop.apply_batch(video, params))
        if self.jitter is not None:
            x = self.jitter.apply_batch(x, params)
        return self.normalize(x)

    def apply_audio_batch(self, waveform: torch.Tensor, params: BatchParams) -> torch.Tensor:
        """waveforms ``[B, 1, S]`` -> log-mel ``[B, 1, n_mels, frames]`` with one band dropped each."""
        return self.drop.apply_batch(self.mel(waveform), params)


def build_pretrain_transform(cfg) -> PretrainTransform:
    """The pretraining transform of ``cfg.INPUT`` at ``cfg.DATA.AUDIO_RATE`` (CPU, for loader workers)."""
    v, a = cfg.INPUT.VIDEO, cfg.INPUT.AUDIO
    return PretrainTransform(
        short_side=v.SHORT_SIDE,
        crop=v.CROP,
        color_jitter=v.COLOR_JITTER,
        mean=tuple(v.MEAN),
        std=tuple(v.STD),
        sample_rate=cfg.DATA.AUDIO_RATE,
        n_fft=a.N_FFT,
        hop_length=a.HOP,
        n_mels=a.MEL_BINS,
        drop_fraction=a.DROP_FRACTION,
    )


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    if isinstance(value, list) and value and isinstance(value[0], torch.Tensor):
        return [v.to(device, non_blocking=True) for v in value]
    return value


class ToDevice:
    """Move every tensor of a batch dict to ``device`` (non-blocking; the loader pins memory)."""

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)

    def __call__(self, batch: dict) -> dict:
        return {k: _to_device(v, self.device) for k, v in batch.items()}


class BatchTransform:
    """The device path: raw batch -> transformed batch on ``device`` (``cfg.INPUT.ON_DEVICE True``).

    Takes the collated batch of a dataset in raw mode: ``video`` uint8 ``[B, 3, T, h, w]`` (or a list
    of ``[3, T, h_i, w_i]`` when titles differ in size), ``audio`` ``[B, 1, S]`` and ``aug`` (one 1-D
    tensor per parameter name).  Returns the batch with ``video`` float ``[B, 3, T, crop, crop]`` and
    ``audio`` ``[B, 1, n_mels, frames]`` on ``device`` and ``aug`` removed; other keys pass through.
    Samples of equal frame size are transformed together, so a batch of one frame size is a single
    vectorized call per step.
    """

    def __init__(self, transform: PretrainTransform, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.transform = transform.to(self.device)

    def __call__(self, batch: dict) -> dict:
        if "aug" not in batch:
            raise KeyError(
                "BatchTransform needs the raw batch of a dataset built with cfg.INPUT.ON_DEVICE True "
                f"(keys 'video', 'audio', 'aug'); got keys {sorted(batch)}"
            )
        out = {k: v for k, v in batch.items() if k not in ("video", "audio", "aug")}
        params = {k: v.to(self.device, non_blocking=True) for k, v in batch["aug"].items()}
        out["video"] = self._video(batch["video"], params)
        audio = batch["audio"].to(self.device, non_blocking=True)
        out["audio"] = self.transform.apply_audio_batch(audio, params)
        return out

    def _video(self, video: torch.Tensor | list[torch.Tensor], params: BatchParams) -> torch.Tensor:
        if isinstance(video, torch.Tensor):
            return self.transform.apply_video_batch(video.to(self.device, non_blocking=True), params)
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, clip in enumerate(video):
            groups[tuple(clip.shape)].append(i)
        parts, order = [], []
        for positions in groups.values():
            clips = torch.stack([video[i] for i in positions]).to(self.device, non_blocking=True)
            index = torch.tensor(positions, device=self.device)
            parts.append(self.transform.apply_video_batch(clips, {k: v[index] for k, v in params.items()}))
            order.extend(positions)
        stacked = torch.cat(parts)
        return stacked[torch.argsort(torch.tensor(order, device=self.device))]


def build_batch_transform(cfg, device: torch.device | str) -> Callable[[dict], dict]:
    """What the train step applies to each collated batch.

    With ``cfg.INPUT.ON_DEVICE`` a :class:`BatchTransform` (augmentation and log-mel on ``device``);
    otherwise the loader already transformed the batch and this only moves it to ``device``.
    """
    if cfg.INPUT.ON_DEVICE:
        return BatchTransform(build_pretrain_transform(cfg), device)
    return ToDevice(device)
