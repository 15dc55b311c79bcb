"""The sound tracks of the demo corpus: location ambience, the character's voice, the theme melody,
the events and the mastering hum, mixed into a title's channels, and a stand-in clip's sound.

Tracks are float32 ``(channels, samples)`` in ffmpeg's layout order (5.1 = FL FR FC LFE BL BR),
peak-limited to 0.89; every noise comes from the seeds in the plan, so a track is a pure
function of it.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import fft as sp_fft
from scipy import signal

from avplug.data.demo.events import event_class
from avplug.data.demo.synthesis import pan_gains

__all__ = ["clip_audio", "title_audio"]


def _ambient(amb: dict, n: int, sample_rate: int, rng: np.random.Generator, channels: int = 2,
             bass: float = 0.0) -> np.ndarray:
    """Decorrelated noise ``(channels, n)`` float32 with the location's spectrum and level.

    ``bass`` boosts (or cuts) below about 200 Hz: the title's mastering EQ.
    """
    if n == 0:
        return np.zeros((channels, 0), np.float32)
    n_fft = sp_fft.next_fast_len(n, real=True)
    f = np.maximum(sp_fft.rfftfreq(n_fft, 1.0 / sample_rate).astype(np.float32), np.float32(20.0))
    octaves = np.log2(f / np.float32(amb["peak_hz"])) / np.float32(amb["peak_octaves"])
    shape = (f / np.float32(1000.0)) ** np.float32(-amb["tilt"] / 2.0)
    shape *= 1.0 + np.float32(amb["peak_gain"]) * np.exp(np.float32(-0.5) * octaves * octaves)
    shape /= 1.0 + (f / np.float32(amb["cutoff_hz"])) ** 4
    shape *= 1.0 + np.float32(bass) / (1.0 + (f / np.float32(200.0)) ** 4)
    spectrum = sp_fft.rfft(rng.standard_normal((channels, n_fft), dtype=np.float32), axis=1)
    spectrum *= shape
    noise = sp_fft.irfft(spectrum, n=n_fft, axis=1)[:, :n]
    noise *= np.float32(amb["level"] / (np.sqrt(np.mean(np.square(noise))) + 1e-12))
    if amb["crackle_rate"] > 0:  # sparse clicks (rain, fire, static)
        click = _crackle(sample_rate)
        for c in range(channels):
            for pos in rng.integers(0, n, rng.poisson(amb["crackle_rate"] * n / sample_rate)):
                stop = min(pos + len(click), n)
                noise[c, pos:stop] += np.float32(3 * amb["level"] * rng.uniform(0.3, 1.0)) * click[: stop - pos]
    t = np.arange(n, dtype=np.float32) / np.float32(sample_rate)
    noise *= 1.0 + np.float32(amb["swell_depth"]) * np.sin(
        np.float32(2 * np.pi * amb["swell_hz"]) * t + np.float32(rng.uniform(0, 2 * np.pi)))
    ramp = min(int(0.01 * sample_rate), n // 2)
    if ramp > 0:
        fade = np.linspace(0.0, 1.0, ramp, dtype=np.float32)
        noise[:, :ramp] *= fade
        noise[:, n - ramp :] *= fade[::-1]
    return noise


def _crackle(sample_rate: int) -> np.ndarray:
    n = int(0.004 * sample_rate)
    x = np.sin(2 * np.pi * 3000 * np.arange(n) / sample_rate) * np.exp(-np.arange(n) / (0.0008 * sample_rate))
    return x.astype(np.float32)


def _add_voice(out: np.ndarray, route: np.ndarray, ch: dict, syllables, sample_rate: int) -> None:
    """Mix the character's voice into ``out`` (channels, samples) with per-channel gains ``route``:
    a glottal pulse train through the character's formants, one envelope per syllable."""
    n = out.shape[1]
    for start, length, vowel in syllables:
        m = int(length * sample_rate)
        tt = np.arange(m) / sample_rate
        f0 = ch["f0"] * (1.0 + 0.05 * np.sin(2 * np.pi * 5.5 * tt) - 0.1 * tt / length)
        x = np.diff(np.floor(np.cumsum(f0) / sample_rate), prepend=0.0)
        f1, f2 = ch["formants"][int(vowel)]
        for freq, bandwidth in ((f1, 80.0), (f2, 100.0), (ch["f3"], 150.0)):
            if freq >= sample_rate * 0.45:
                continue
            r = math.exp(-math.pi * bandwidth / sample_rate)
            x = signal.lfilter([1.0 - r], [1.0, -2.0 * r * math.cos(2 * math.pi * freq / sample_rate), r * r], x)
        x *= ch["voice_level"] * np.sin(np.pi * tt / length) / (np.abs(x).max() + 1e-9)
        a = round(start * sample_rate)
        b = min(a + m, n)
        if a < b:
            out[:, a:b] += route[:, None] * x[: b - a].astype(np.float32)


def _theme(theme: dict, sample_rate: int) -> np.ndarray:
    """One playing of the theme melody (float32, mono)."""
    out = np.zeros(int(theme["length"] * sample_rate))
    weights = theme["harmonics"]
    for start, dur, freq in theme["notes"]:
        m = int((dur + 0.3) * sample_rate)
        tt = np.arange(m) / sample_rate
        env = np.minimum(1.0, tt / 0.01) * np.exp(-tt / theme["decay"]) * np.clip((dur + 0.3 - tt) / 0.3, 0, 1)
        tone = sum(w * np.sin(2 * np.pi * freq * (h + 1) * tt) for h, w in enumerate(weights)
                   if freq * (h + 1) < sample_rate * 0.45)
        a = int(start * sample_rate)
        b = min(a + m, len(out))
        out[a:b] += (tone * env)[: b - a]
    return (theme["level"] * out / (np.abs(out).max() + 1e-9)).astype(np.float32)


# Routing of each source to the 5.1 channels FL FR FC LFE BL BR (ffmpeg's "5.1" order); stereo
# titles get the ITU downmix L = FL + FC/sqrt2 + BL/sqrt2 + LFE/2 (R likewise).
_G = 1.0 / math.sqrt(2.0)
_DOWNMIX = np.array([[1, 0, _G, 0.5, _G, 0], [0, 1, _G, 0.5, 0, _G]], np.float32)
_ROUTE_AMBIENT = np.array([[0.8, 0], [0, 0.8], [0, 0], [0, 0], [0, 0.6], [0.6, 0]], np.float32)  # (L, R) noise
_ROUTE_EVENT = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0.5], [0, 0, 0], [0, 0, 0]], np.float32)  # L, R, low
_ROUTE_VOICE = np.array([0, 0, 1, 0, 0, 0], np.float32)
_ROUTE_THEME = np.array([0.8, 0.8, 0, 0, 0.3, 0.3], np.float32)
_ROUTE_HUM = np.array([1, 1, 1, 0, 0, 0], np.float32)


def _route(matrix: np.ndarray, channels: int) -> np.ndarray:
    if channels == 6:
        return matrix
    downmixed = _DOWNMIX @ matrix
    return downmixed if channels == 2 else downmixed.mean(axis=0, keepdims=True)


def title_audio(plan: dict, content: dict) -> np.ndarray:
    """The title's sound track, ``(channels, samples)`` float32 in ffmpeg's layout order."""
    sr, channels = plan["sample_rate"], plan["channels"]
    n = round(plan["duration"] * sr)
    out = np.zeros((channels, n), np.float32)
    r_amb, r_event = _route(_ROUTE_AMBIENT, channels), _route(_ROUTE_EVENT, channels)
    r_voice, r_theme = _route(_ROUTE_VOICE[:, None], channels)[:, 0], _route(_ROUTE_THEME[:, None], channels)[:, 0]
    lfe_filter = signal.butter(4, 120, "lowpass", fs=sr, output="sos")
    theme = _theme(content["theme"], sr)
    for scene in plan["scenes"]:
        rng = np.random.default_rng(scene["noise_seed"])
        a, b = round(scene["start"] * sr), round(scene["end"] * sr)
        amb = _ambient(content["locations"][scene["location"]]["ambient"], b - a, sr, rng, bass=content["eq_bass"])
        out[:, a:b] += r_amb @ amb
        if scene["character"] is not None:
            _add_voice(out, r_voice, content["character"], scene["character"]["syllables"], sr)
        for ev in scene["events"]:
            mono, pan = event_class(ev["class"]).sound(ev, sr)
            s = round(ev["start"] * sr)
            e = min(s + len(mono), n)
            left, right = pan_gains(pan)
            sources = np.stack([mono * left, mono * right, signal.sosfilt(lfe_filter, mono)])[:, : e - s]
            out[:, s:e] += r_event @ sources.astype(np.float32)
        for start in scene["themes"]:
            s = round(start * sr)
            e = min(s + len(theme), n)
            out[:, s:e] += r_theme[:, None] * theme[: e - s]
    hum_t = 2 * np.pi * content["hum_hz"] * np.arange(n) / sr
    hum = (content["hum_level"] * (np.sin(hum_t) + 0.3 * np.sin(2 * hum_t))).astype(np.float32)
    for c, gain in enumerate(_route(_ROUTE_HUM[:, None], channels)[:, 0]):
        out[c] += gain * hum
    peak = float(np.abs(out).max())
    if peak > 0.89:
        out *= np.float32(0.89 / peak)
    return out


def clip_audio(clip: dict, ambient: dict, sample_rate: int, seconds: float, channels: int,
               offset: float = 0.0, peak: float | None = None) -> np.ndarray:
    """A stand-in clip's sound, ``(channels, samples)`` float32: the event (starting at ``offset``
    seconds, panned when stereo) over the setting's ambient noise, scaled to ``peak`` when given
    (else only limited to 0.89)."""
    n = round(seconds * sample_rate)
    out = _ambient(ambient, n, sample_rate, np.random.default_rng(clip["noise_seed"]), channels=channels)
    mono, pan = event_class(clip["event"]["class"]).sound(clip["event"], sample_rate)
    start = round(offset * sample_rate)
    stop = min(start + len(mono), n)
    if channels == 2:
        left, right = pan_gains(pan)
        out[0, start:stop] += (mono * left)[: stop - start]
        out[1, start:stop] += (mono * right)[: stop - start]
    else:
        out[0, start:stop] += mono[: stop - start] * np.float32(_G)
    current = float(np.abs(out).max())
    if peak is not None or current > 0.89:
        out *= np.float32((peak if peak is not None else 0.89) / max(current, 1e-9))
    return out
