"""Sound building blocks of the event classes: float64 mono signals at a given sample rate.

Every function is deterministic given its ``rng`` (a ``numpy.random.Generator``) and arguments;
``pan_gains`` is also what the track mixer uses to place a panned event in stereo.
"""
from __future__ import annotations

import functools
import math

import numpy as np
from scipy import signal

__all__ = ["add_at", "bandpass", "burst", "decay", "onset_peak", "pan_gains", "thud"]


def pan_gains(pan: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Equal-power left/right gains for a stereo position in ``[-1, 1]``."""
    angle = (np.clip(pan, -1.0, 1.0) + 1.0) * (math.pi / 4.0)
    return np.cos(angle), np.sin(angle)


def add_at(buf: np.ndarray, start_s: float, sig: np.ndarray, sample_rate: int) -> None:
    """Mix ``sig`` into ``buf`` starting at ``start_s`` seconds (clipped to the buffer)."""
    start = round(start_s * sample_rate)
    if start >= len(buf) or start + len(sig) <= 0:
        return
    a, b = max(start, 0), min(start + len(sig), len(buf))
    buf[a:b] += sig[a - start : b - start]


def decay(n: int, sample_rate: int, tau: float) -> np.ndarray:
    """An exponential decay envelope ``exp(-t / tau)`` over ``n`` samples."""
    return np.exp(-np.arange(n, dtype=np.float64) / (tau * sample_rate))


@functools.lru_cache(maxsize=256)
def _butter(order: int, cutoff: float | tuple[float, float], btype: str, sample_rate: int) -> np.ndarray:
    return signal.butter(order, cutoff, btype=btype, fs=sample_rate, output="sos")


def bandpass(x: np.ndarray, sample_rate: int, lo: float, hi: float, order: int = 2) -> np.ndarray:
    """``x`` through a Butterworth band-pass ``[lo, hi]`` Hz (clamped to 10 Hz .. 0.475 x the rate)."""
    lo, hi = max(float(lo), 10.0), min(float(hi), sample_rate * 0.475)
    return signal.sosfilt(_butter(order, (lo, hi), "bandpass", sample_rate), x)


def thud(rng, sample_rate: int, f_start: float, f_end: float, tau: float) -> np.ndarray:
    """A pitch-dropping decaying sine with a short noise transient (impact of a soft body)."""
    n = int(6 * tau * sample_rate)
    t = np.arange(n) / sample_rate
    freq = f_end + (f_start - f_end) * np.exp(-t / 0.03)
    body = np.sin(2 * np.pi * np.cumsum(freq) / sample_rate) * decay(n, sample_rate, tau)
    click = bandpass(rng.standard_normal(n), sample_rate, 800, 5000) * decay(n, sample_rate, 0.004)
    return body + 0.4 * click


def burst(rng, sample_rate: int, lo: float, hi: float, tau: float) -> np.ndarray:
    """A band-limited noise burst with an instant attack and an exponential decay."""
    n = int(6 * tau * sample_rate)
    sig = bandpass(rng.standard_normal(n), sample_rate, lo, hi) * decay(n, sample_rate, tau)
    return sig / (np.abs(sig).max() + 1e-9)


def onset_peak(x: np.ndarray, n_attack: int) -> np.ndarray:
    """Normalize a hit to unit peak and ramp its first samples so its onset is click-free."""
    x = x / (np.abs(x).max() + 1e-9)
    n_attack = min(n_attack, len(x))
    x[:n_attack] *= np.linspace(0.0, 1.0, n_attack, endpoint=False)
    return x
