"""Audio of any layout and rate as mono float32 at a requested rate, placed by timestamp.

:class:`MonoResampler` turns decoded frames into time-indexed mono chunks; :class:`AudioPlacer`
writes them into an output window whose sample 0 is at a known time, so audio lands where its
timestamps say whatever the codec's frame size or the source rate.  :func:`audio_window` is the
zero-filled window a ``read_audio`` request fills (zeros stay where the file has no audio).
"""
from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from avplug.data.decoders.media import frame_time
from avplug.data.errors import MediaError

# Seconds decoded before an audio window so that codecs with overlapping frames (AAC, MP3, ...)
# and the resampler have settled when the window starts.
AUDIO_PREROLL_S = 0.25


def audio_window(path, start_s: float, duration_s: float, sample_rate: int) -> np.ndarray:
    """``float32 zeros [round(duration_s * sample_rate)]`` for a ``read_audio`` request;
    :class:`MediaError` naming ``path`` unless both the duration and the rate are positive."""
    if duration_s <= 0 or sample_rate <= 0:
        raise MediaError(path, f"asked for {duration_s} s of audio at {sample_rate} Hz; both must be positive")
    return np.zeros(round(duration_s * sample_rate), np.float32)


class MonoResampler:
    """Turns decoded audio frames of any layout and rate into mono float32 at ``rate``.

    Channels are averaged at the source rate, then FFmpeg's resampler (time-aligned: output
    sample ``j`` is at ``first_time + j / rate``) converts the rate.  :meth:`feed` and
    :meth:`flush` return ``(index, samples)`` chunks where ``index`` counts output samples since
    the first frame fed, whose time is :attr:`first_time`.
    """

    def __init__(self, rate: int) -> None:
        self.rate = int(rate)
        self.first_time: float | None = None
        self._produced = 0
        self._to_float = av.AudioResampler(format="fltp")
        self._rate_conv: av.AudioResampler | None = None
        self._src_rate: int | None = None
        self._src_pts = 0

    def _mono(self, frame) -> np.ndarray:
        planes = [f.to_ndarray() for f in self._to_float.resample(frame)]
        if not planes:
            return np.zeros(0, np.float32)
        x = np.concatenate(planes, axis=1)
        return x.mean(axis=0, dtype=np.float32) if x.shape[0] > 1 else x[0].astype(np.float32, copy=False)

    def _emit(self, arrays) -> list[tuple[int, np.ndarray]]:
        out = []
        for a in arrays:
            if a.size:
                out.append((self._produced, a))
                self._produced += a.size
        return out

    def feed(self, frame, stream=None) -> list[tuple[int, np.ndarray]]:
        if self.first_time is None:
            t = frame_time(frame, stream) if stream is not None else (float(frame.time) if frame.time is not None else None)
            self.first_time = t if t is not None else 0.0
            self._src_rate = int(frame.sample_rate)
        mono = self._mono(frame)
        if self._src_rate == self.rate:
            return self._emit([mono])
        return self._emit(self._convert(mono))

    def _convert(self, mono: np.ndarray | None) -> list[np.ndarray]:
        if self._rate_conv is None:
            self._rate_conv = av.AudioResampler(format="flt", layout="mono", rate=self.rate)
        if mono is None:
            frames = self._rate_conv.resample(None)
        else:
            if not mono.size:
                return []
            f = av.AudioFrame.from_ndarray(mono[None, :], format="flt", layout="mono")
            f.sample_rate = self._src_rate
            f.pts = self._src_pts
            f.time_base = Fraction(1, self._src_rate)
            self._src_pts += mono.size
            frames = self._rate_conv.resample(f)
        return [f.to_ndarray()[0].astype(np.float32, copy=False) for f in frames]

    def flush(self) -> list[tuple[int, np.ndarray]]:
        if self._rate_conv is None:
            return []
        return self._emit(self._convert(None))


class AudioPlacer:
    """Writes :class:`MonoResampler` chunks into ``out``, whose sample 0 is at ``out_start_s``."""

    def __init__(self, out: np.ndarray, out_start_s: float, rate: int) -> None:
        self.out, self.start, self.rate = out, out_start_s, rate
        self._offset: int | None = None
        self.written = 0  # samples that landed inside out
        self.last_index = -1  # highest sample index (in out's frame) seen so far

    def add(self, first_time: float, chunks: list[tuple[int, np.ndarray]]) -> bool:
        """Place chunks; returns False once the audio has moved past the end of ``out``."""
        if self._offset is None:
            self._offset = round((first_time - self.start) * self.rate)
        n = len(self.out)
        for index, samples in chunks:
            lo = self._offset + index
            hi = lo + samples.size
            self.last_index = max(self.last_index, hi - 1)
            a, b = max(lo, 0), min(hi, n)
            if a < b:
                self.out[a:b] = samples[a - lo : b - lo]
                self.written += b - a
        return self.last_index < n - 1
