"""The audio front end: waveform -> log-mel spectrogram image, on the CPU or on a GPU.

The paper (section 4.1) computes a mel spectrogram from 48 kHz mono audio with 96 mel filters, an
FFT window of 2048 and a hop of 512 samples.  :class:`LogMelSpectrogram` does exactly that with
``torch.stft`` so the same module runs per sample in DataLoader workers and batched on a GPU inside
the train step (``cfg.INPUT.ON_DEVICE``); it does not use torchaudio.

Conventions (identical to ``librosa.feature.melspectrogram(power=2)`` with ``pad_mode="reflect"``):

- STFT: periodic Hann window of length ``n_fft`` (``win_length = n_fft``), centered frames (the
  signal is reflect-padded by ``n_fft // 2`` on both sides), so a signal of ``S`` samples gives
  ``1 + S // hop_length`` frames: 3.2 s at 48 kHz with hop 512 gives 301 frames.
- power spectrogram ``|STFT|^2`` (unnormalized FFT);
- mel filterbank from ``librosa.filters.mel``: Slaney mel scale (``htk=False``) and Slaney area
  normalization (``norm="slaney"``), ``fmin = 0``, ``fmax = sample_rate / 2`` by default; built
  once at construction and kept as a (non-persistent) buffer, so ``.to(device)`` moves it;
- ``log(mel + eps)`` with natural log and ``eps = 1e-6`` by default.
"""
from __future__ import annotations

import librosa
import torch
from torch import nn

#: Added to the mel power before the logarithm so that silence stays finite (log(1e-6) ~ -13.8).
DEFAULT_LOG_EPS = 1e-6


def num_frames(num_samples: int, hop_length: int) -> int:
    """Frames of a centered STFT of ``num_samples`` samples: ``1 + num_samples // hop_length``."""
    return 1 + num_samples // hop_length


class LogMelSpectrogram(nn.Module):
    """Waveform ``[..., S]`` -> log-mel image ``[..., n_mels, 1 + S // hop_length]`` (float32).

    Leading dimensions are kept, so a mono snippet ``[1, S]`` gives the 1-channel image
    ``[1, n_mels, frames]`` and a batch ``[B, 1, S]`` gives ``[B, 1, n_mels, frames]``.  The input
    may be on any device and of any float dtype; the computation runs in float32 on the input's
    device (call ``.to(device)`` once to move the filterbank and window there).
    """

    def __init__(
        self,
        sample_rate: int,
        n_fft: int,
        hop_length: int,
        n_mels: int,
        *,
        fmin: float = 0.0,
        fmax: float | None = None,
        eps: float = DEFAULT_LOG_EPS,
    ) -> None:
        super().__init__()
        if n_fft < 2 or hop_length < 1 or n_mels < 1:
            raise ValueError(f"LogMelSpectrogram needs n_fft >= 2, hop_length >= 1, n_mels >= 1; got {n_fft}, {hop_length}, {n_mels}")
        if n_mels > n_fft // 2 + 1:
            raise ValueError(f"LogMelSpectrogram: n_mels = {n_mels} exceeds the {n_fft // 2 + 1} FFT bins of n_fft = {n_fft}")
        if eps <= 0:
            raise ValueError(f"LogMelSpectrogram: eps must be positive, got {eps}")
        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.n_mels = int(n_mels)
        self.fmin = float(fmin)
        self.fmax = float(sample_rate) / 2 if fmax is None else float(fmax)
        self.eps = float(eps)
        filters = librosa.filters.mel(
            sr=self.sample_rate, n_fft=self.n_fft, n_mels=self.n_mels, fmin=self.fmin, fmax=self.fmax,
            htk=False, norm="slaney",
        )
        # Derived from the constructor arguments, so not saved in state dicts.
        self.register_buffer("mel_filters", torch.from_numpy(filters), persistent=False)  # [n_mels, n_fft // 2 + 1]
        self.register_buffer("window", torch.hann_window(self.n_fft, periodic=True), persistent=False)

    def extra_repr(self) -> str:
        return (
            f"sample_rate={self.sample_rate}, n_fft={self.n_fft}, hop_length={self.hop_length}, "
            f"n_mels={self.n_mels}, fmin={self.fmin}, fmax={self.fmax}, eps={self.eps}"
        )

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for a waveform of ``num_samples`` samples."""
        return num_frames(num_samples, self.hop_length)

    def mel_power(self, waveform: torch.Tensor) -> torch.Tensor:
        """The mel power spectrogram ``[..., n_mels, frames]`` before the logarithm."""
        if waveform.dim() < 1:
            raise ValueError("LogMelSpectrogram expects a waveform [..., S], got a scalar")
        num_samples = waveform.shape[-1]
        if num_samples <= self.n_fft // 2:
            raise ValueError(
                f"LogMelSpectrogram: a waveform of {num_samples} samples is too short for reflect padding "
                f"with n_fft = {self.n_fft} (needs more than {self.n_fft // 2})"
            )
        lead = waveform.shape[:-1]
        flat = waveform.reshape(-1, num_samples).float()
        # Spectra stay in float32 even inside an autocast region of the train step.
        with torch.autocast(device_type=flat.device.type, enabled=False):
            return self._mel_power(flat).reshape(*lead, self.n_mels, -1)

    def _mel_power(self, flat: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(
            flat,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.n_fft,
            window=self.window.to(flat.device),
            center=True,
            pad_mode="reflect",
            normalized=False,
            onesided=True,
            return_complex=True,
        )  # [N, n_fft // 2 + 1, frames]
        power = spec.real.square() + spec.imag.square()
        return torch.matmul(self.mel_filters.to(power.device), power)  # [N, n_mels, frames]

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return torch.log(self.mel_power(waveform) + self.eps)
