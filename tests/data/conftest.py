"""Tiny media files for the catalog / store / decoder tests, made with PyAV.

The "timecode" source encodes time in both modalities so that alignment can be checked exactly:

- video frame ``n`` (at ``n / fps`` seconds) draws ``n`` as ``BITS`` black/white vertical bars
  (most significant bit left), which survive H.264 and downscaling;
- audio holds short Gaussian-windowed 2 kHz bursts centred at ``burst_times(seconds)``, placed
  at offsets that do not repeat with the snippet length, in silence.
"""
from __future__ import annotations

import fractions
from pathlib import Path

import av
import numpy as np
import pytest

BITS = 10
BURST_HZ = 2000.0
BURST_SIGMA_S = 0.001


def burst_times(seconds: float) -> np.ndarray:
    """Centres of the audio bursts of a timecode source ``seconds`` long."""
    return np.arange(0.13, seconds - 0.05, 0.37)


def frame_image(n: int, width: int, height: int) -> np.ndarray:
    """An RGB image whose bars spell ``n`` in binary (white = 1)."""
    img = np.zeros((height, width, 3), np.uint8)
    bar = width // BITS
    for b in range(BITS):
        if (n >> (BITS - 1 - b)) & 1:
            img[:, b * bar : (b + 1) * bar] = 255
    return img


def read_counter(img: np.ndarray) -> int:
    """Inverse of :func:`frame_image` on a decoded (possibly resized) RGB frame."""
    h, w = img.shape[:2]
    gray = img.astype(np.float32).mean(axis=2)
    value = 0
    for b in range(BITS):
        x = int((b + 0.5) * w / BITS)
        value = (value << 1) | int(gray[h // 4 : 3 * h // 4, x].mean() > 127)
    return value


def burst_signal(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    out = np.zeros_like(t)
    for c in burst_times(seconds):
        out += 0.8 * np.exp(-0.5 * ((t - c) / BURST_SIGMA_S) ** 2) * np.sin(2 * np.pi * BURST_HZ * (t - c))
    return out.astype(np.float32)


def make_media(
    path: Path,
    seconds: float,
    *,
    fps: int = 25,
    size: tuple[int, int] = (160, 96),
    audio_rate: int = 44100,
    layout: str | None = "stereo",
    video: bool = True,
    faststart: bool = True,
) -> Path:
    """Write an H.264 (+ AAC) mp4 of the timecode pattern; ``layout=None`` means no audio."""
    opts = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=opts) as out:
        vs = None
        if video:
            vs = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "18", "threads": "1"})
            vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
        as_ = None
        if layout is not None:
            as_ = out.add_stream("aac", rate=audio_rate, layout=layout)
        if vs is not None:
            for n in range(int(round(seconds * fps))):
                frame = av.VideoFrame.from_ndarray(frame_image(n, *size), format="rgb24")
                frame.pts = n
                frame.time_base = fractions.Fraction(1, fps)
                for packet in vs.encode(frame):
                    out.mux(packet)
            for packet in vs.encode():
                out.mux(packet)
        if as_ is not None:
            mono = burst_signal(seconds, audio_rate)
            channels = av.AudioLayout(layout).nb_channels
            planar = np.repeat(mono[None], channels, axis=0)
            block = 1024
            for start in range(0, planar.shape[1], block):
                chunk = np.ascontiguousarray(planar[:, start : start + block])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
                frame.sample_rate = audio_rate
                frame.pts = start
                frame.time_base = fractions.Fraction(1, audio_rate)
                for packet in as_.encode(frame):
                    out.mux(packet)
            for packet in as_.encode():
                out.mux(packet)
    return path
