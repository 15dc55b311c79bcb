"""Audio of any layout and rate as mono float32 at a requested rate, placed by its timestamps.

This module owns the mapping from audio timestamps to output samples; every reader of audio
(the store writer, the decoders, and through them the downstream clips) goes through it:

- :class:`MonoResampler` turns decoded frames into :class:`AudioChunk` runs of mono samples, each
  carrying the time of its samples.  Within a run, samples follow each other at the output rate
  (sample ``i`` of the run at ``anchor_s + i / rate``), so timestamp jitter never opens holes; a
  frame whose time disagrees with the run's sample count by more than half its own length (or
  whose rate or layout changes) starts a new run anchored at its own time.
- :class:`AudioPlacer` writes chunks into an output window whose sample 0 is at a known time:
  sample ``i`` of a run lands at ``round((anchor_s - start_s) * rate) + i``.  Audio overlapping
  what is already placed is dropped (the earlier audio stays) and counted in
  :attr:`AudioPlacer.overlap_samples`; a hole before audio that starts later than where the
  previous audio ended (or later than the window's start) stays silent and is counted in
  :attr:`AudioPlacer.gap_samples`.  Both count only samples inside the window.

Times are seconds on whatever timeline the caller feeds: the file's own timestamps in the
decoders, the title time of :class:`~avplug.data.decoders.timeline.Timeline` in the store writer.
:func:`audio_window` is the zero-filled window a ``read_audio`` request fills.
"""
from __future__ import annotations

from fractions import Fraction
from typing import NamedTuple

import av
import numpy as np

from avplug.data.errors import MediaError

# Seconds decoded before an audio window so that codecs with overlapping frames (AAC, MP3, ...)
# and the resampler have settled when the window starts.
AUDIO_PREROLL_S = 0.25
# A frame whose time is off the running sample count by more than this fraction of its own
# length starts a new run at its own time (smaller disagreements are timestamp rounding).
RESYNC_FRACTION = 0.5


def audio_window(path, start_s: float, duration_s: float, sample_rate: int) -> np.ndarray:
    """``float32 zeros [round(duration_s * sample_rate)]`` for a ``read_audio`` request;
    :class:`MediaError` naming ``path`` unless both the duration and the rate are positive."""
    if duration_s <= 0 or sample_rate <= 0:
        raise MediaError(path, f"asked for {duration_s} s of audio at {sample_rate} Hz; both must be positive")
    return np.zeros(round(duration_s * sample_rate), np.float32)


class AudioChunk(NamedTuple):
    """Mono samples of one run: ``samples[i]`` is at ``anchor_s + (index + i) / rate``."""

    anchor_s: float
    index: int
    samples: np.ndarray


class MonoResampler:
    """Turns decoded audio frames of any layout and rate into time-stamped mono float32 at ``rate``.

    Channels are averaged at the source rate, then FFmpeg's resampler (time-aligned: output
    sample ``j`` of a run is at ``anchor_s + j / rate``) converts the rate.  :meth:`feed` takes a
    frame and its time and returns the chunks that became ready; :meth:`flush` the rest.
    """

    def __init__(self, rate: int) -> None:
        self.rate = int(rate)
        self.runs = 0  # runs started: 1 for audio whose timestamps follow its sample count
        self._anchor: float | None = None
        self._produced = 0  # output samples of the current run
        self._fed = 0  # source samples of the current run
        self._format: tuple | None = None  # (rate, layout) of the current run's frames
        self._to_float: av.AudioResampler | None = None
        self._rate_conv: av.AudioResampler | None = None

    def feed(self, frame, time_s: float | None) -> list[AudioChunk]:
        """Chunks of ``frame`` (at ``time_s``; None: right after the previous frame), and of a
        finished run when this frame starts a new one."""
        out: list[AudioChunk] = []
        src_rate = int(frame.sample_rate)
        expected = None if self._anchor is None else self._anchor + self._fed / self._format[0]
        if time_s is None:
            time_s = expected if expected is not None else 0.0
        fmt = (src_rate, frame.layout.name)
        if expected is None or fmt != self._format or abs(time_s - expected) > RESYNC_FRACTION * frame.samples / src_rate:
            out += self.flush()
            self._start_run(time_s, fmt)
        mono = self._mono(frame)
        self._fed += frame.samples
        return out + self._emit([mono] if src_rate == self.rate else self._convert(mono))

    def flush(self) -> list[AudioChunk]:
        """What the rate converter still holds (the end of the current run)."""
        if self._rate_conv is None:
            return []
        return self._emit(self._convert(None))

    def _start_run(self, time_s: float, fmt: tuple) -> None:
        self._anchor, self._produced, self._fed, self._format = time_s, 0, 0, fmt
        self._to_float = av.AudioResampler(format="fltp")
        self._rate_conv = None if fmt[0] == self.rate else av.AudioResampler(format="flt", layout="mono", rate=self.rate)
        self.runs += 1

    def _mono(self, frame) -> np.ndarray:
        planes = [f.to_ndarray() for f in self._to_float.resample(frame)]
        if not planes:
            return np.zeros(0, np.float32)
        x = np.concatenate(planes, axis=1)
        return x.mean(axis=0, dtype=np.float32) if x.shape[0] > 1 else x[0].astype(np.float32, copy=False)

    def _emit(self, arrays) -> list[AudioChunk]:
        out = []
        for a in arrays:
            if a.size:
                out.append(AudioChunk(self._anchor, self._produced, a))
                self._produced += a.size
        return out

    def _convert(self, mono: np.ndarray | None) -> list[np.ndarray]:
        if mono is None:
            frames = self._rate_conv.resample(None)
        else:
            if not mono.size:
                return []
            f = av.AudioFrame.from_ndarray(mono[None, :], format="flt", layout="mono")
            src_rate = self._format[0]
            f.sample_rate = src_rate
            f.pts = self._fed - mono.size  # source samples of the run before this frame
            f.time_base = Fraction(1, src_rate)
            frames = self._rate_conv.resample(f)
        return [f.to_ndarray()[0].astype(np.float32, copy=False) for f in frames]


class AudioPlacer:
    """Writes :class:`AudioChunk` runs into ``out`` (sample 0 at ``out_start_s``) by their
    timestamps, trimming overlaps and leaving gaps silent (module docstring)."""

    def __init__(self, out: np.ndarray, out_start_s: float, rate: int) -> None:
        self.out, self.start, self.rate = out, out_start_s, rate
        self.written = 0  # samples that landed inside out
        self.overlap_samples = 0  # samples inside out dropped as overlapping earlier audio
        self.gap_samples = 0  # silent samples inside out before audio that starts late
        self._end = 0  # one past the last sample placed (or 0), in out's frame
        self._run: float | None = None  # anchor of the run being placed
        self._run_offset = 0  # its first sample's index in out's frame

    def add(self, chunks: list[AudioChunk]) -> bool:
        """Place chunks; returns False once the audio has moved past the end of ``out``."""
        n = len(self.out)
        for anchor, index, samples in chunks:
            if anchor != self._run:
                self._run, self._run_offset = anchor, round((anchor - self.start) * self.rate)
            lo = self._run_offset + index
            hi = lo + samples.size
            if lo > self._end:
                self.gap_samples += max(0, min(lo, n) - max(self._end, 0))
            a, b = max(lo, self._end, 0), min(hi, n)
            self.overlap_samples += max(0, min(self._end, n, hi) - max(lo, 0))
            if a < b:
                self.out[a:b] = samples[a - lo : b - lo]
                self.written += b - a
            self._end = max(self._end, hi)
        return self._end < n
