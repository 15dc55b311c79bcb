"""The ``"pyav"`` decoder: PyAV's bundled FFmpeg, always available (contract in
:mod:`avplug.data.decoders`).

Video is read by a cursor that walks the stream forward and seeks only when the next clip is
not close ahead, so the k snippets of a title cost one open and, for nearby snippets, no seek.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence

import av
import numpy as np
import torch

from avplug.data.decoders.media import (
    TIME_EPS,
    best_stream,
    clip_starts,
    ffmpeg_message,
    frame_time,
    open_media,
    seek_timestamp,
    to_rgb24,
)
from avplug.data.decoders.resampling import AUDIO_PREROLL_S, AudioPlacer, MonoResampler, audio_window
from avplug.data.errors import MediaError
from registry import DECODERS

# Consecutive clips at most this far apart (seconds) are decoded without seeking.
CONTIGUOUS_S = 0.5


class _Decoded:
    """A decoded frame with its time and a lazily converted RGB array."""

    __slots__ = ("_rgb", "frame", "time")

    def __init__(self, time: float, frame) -> None:
        self.time, self.frame, self._rgb = time, frame, None

    def rgb(self) -> np.ndarray:
        if self._rgb is None:
            self._rgb = to_rgb24(self.frame)
        return self._rgb


class _VideoCursor:
    """Walks one video stream forward, seeking only when the next clip is not close ahead."""

    def __init__(self, container, stream, path) -> None:
        self.container, self.stream, self.path = container, stream, path
        rate = stream.average_rate or stream.guessed_rate
        self.frame_s = 1.0 / float(rate) if rate else 0.0
        self._it = None
        self._cur: _Decoded | None = None  # last frame at or before the last target
        self._next: _Decoded | None = None  # first frame after it (look-ahead)
        self._ended = False

    def _seek(self, t: float) -> None:
        start = float(self.stream.start_time * self.stream.time_base) if self.stream.start_time is not None else 0.0
        target = max(t, start)
        try:
            self.container.seek(seek_timestamp(target, self.stream), stream=self.stream)
        except av.error.FFmpegError as exc:
            raise MediaError(self.path, f"cannot seek to {t:.3f} s (FFmpeg: {ffmpeg_message(exc)})") from exc
        self._it = self.container.decode(self.stream)
        self._cur = self._next = None
        self._ended = False

    def _pull(self) -> _Decoded | None:
        if self._next is not None:
            d, self._next = self._next, None
            return d
        if self._ended:
            return None
        while True:
            try:
                frame = next(self._it)
            except StopIteration:
                self._ended = True
                return None
            except av.error.FFmpegError as exc:
                raise MediaError(self.path, f"cannot decode video (FFmpeg: {ffmpeg_message(exc)})") from exc
            t = frame_time(frame, self.stream)
            if t is not None:
                return _Decoded(t, frame)

    def frames_at(self, times: np.ndarray, out: np.ndarray) -> None:
        """Write the RGB frames displayed at ``times`` (ascending) into ``out`` ``[len(times), H, W, 3]``.

        A frame whose time is ``t`` (within ``TIME_EPS``) is the one displayed at ``t`` without
        decoding the next frame to confirm it: on a constant-rate stream read at its own rate
        (the snippet store) the clip's last frame is then never followed by a decode of the
        next GOP's keyframe.
        """
        t0 = float(times[0])
        cur = self._cur
        if self._it is None or cur is None or cur.time > t0 + TIME_EPS or t0 - cur.time > CONTIGUOUS_S:
            self._seek(t0)
        for i, t in enumerate(times):
            while self._cur is None or abs(self._cur.time - t) > TIME_EPS:
                d = self._pull()
                if d is None:
                    break
                if d.time <= t + TIME_EPS:
                    self._cur = d
                    continue
                self._next = d
                break
            if self._cur is None:
                if self._next is None:
                    raise MediaError(self.path, f"no video frame decodes at or after {t0:.3f} s")
                use = self._next  # before the first frame: show the first frame
            else:
                use = self._cur
                if i == 0 and self._next is None and self._ended:
                    end = use.time + (float(use.frame.duration * use.frame.time_base) if use.frame.duration else self.frame_s)
                    if t0 > end + TIME_EPS:
                        raise MediaError(self.path, f"start {t0:.3f} s is past the end of the video ({end:.3f} s)")
            rgb = use.rgb()
            if rgb.shape != out.shape[1:]:
                raise MediaError(
                    self.path,
                    f"the frame at {use.time:.3f} s is {rgb.shape[1]}x{rgb.shape[0]} but the stream declares "
                    f"{out.shape[2]}x{out.shape[1]}; avplug reads videos of one frame size",
                )
            out[i] = rgb


class PyAVDecoder:
    """Decoder on PyAV (its bundled FFmpeg).  ``threads``: FFmpeg decoding threads per file
    (1 suits data-loader workers, which already run in parallel)."""

    def __init__(self, threads: int = 1) -> None:
        self.threads = int(threads)

    def _setup(self, stream) -> None:
        cc = stream.codec_context
        if self.threads != 1:
            cc.thread_type = "AUTO"
        cc.thread_count = self.threads

    def read_video_clips(
        self, path: str | os.PathLike, starts_s: Sequence[float], num_frames: int, fps: float
    ) -> torch.Tensor:
        """``uint8 [len(starts_s), num_frames, H, W, 3]``: clip ``c`` holds the frames displayed
        at ``starts_s[c] + i / fps``; the file is opened once and clips are decoded in time order."""
        starts = clip_starts(path, starts_s, num_frames, fps)
        offsets = np.arange(num_frames, dtype=np.float64) / fps
        with open_media(path) as c:
            stream = best_stream(c, "video", path)
            self._setup(stream)
            cursor = _VideoCursor(c, stream, path)
            height, width = stream.codec_context.height, stream.codec_context.width
            if not height or not width:
                raise MediaError(path, "the video stream declares no frame size")
            out = np.empty((starts.size, num_frames, height, width, 3), np.uint8)  # filled in place, one copy per frame
            for k in np.argsort(starts, kind="stable"):
                cursor.frames_at(starts[k] + offsets, out[k])
        return torch.from_numpy(out)

    def read_video(self, path: str | os.PathLike, start_s: float, num_frames: int, fps: float) -> torch.Tensor:
        """``uint8 [num_frames, H, W, 3]``, the frames displayed at ``start_s + i / fps``."""
        return self.read_video_clips(path, [start_s], num_frames, fps)[0]

    def read_audio(self, path: str | os.PathLike, start_s: float, duration_s: float, sample_rate: int) -> torch.Tensor:
        """``float32 [round(duration_s * sample_rate)]`` mono samples starting at ``start_s``."""
        return read_audio_by_timestamps(path, start_s, duration_s, sample_rate, self.threads)


def read_audio_by_timestamps(
    path: str | os.PathLike, start_s: float, duration_s: float, sample_rate: int, threads: int = 1
) -> torch.Tensor:
    """The ``read_audio`` of the decoder contract with PyAV: every decoded frame placed at its own
    timestamp (:mod:`~avplug.data.decoders.resampling`), so overlapping frames are trimmed and
    missing ones leave silence.  A file whose clock jumps has no single timeline to seek on:
    the window is read on the timestamps found after the seek (the store maps jumps away)."""
    out = audio_window(path, start_s, duration_s, sample_rate)
    with open_media(path) as c:
        stream = best_stream(c, "audio", path)
        stream.codec_context.thread_count = threads
        seek_to = start_s - AUDIO_PREROLL_S
        if stream.start_time is None or seek_to > float(stream.start_time * stream.time_base):
            try:
                c.seek(math.floor(seek_to / stream.time_base), stream=stream)
            except av.error.FFmpegError as exc:
                raise MediaError(path, f"cannot seek to {start_s:.3f} s (FFmpeg: {ffmpeg_message(exc)})") from exc
        resampler = MonoResampler(sample_rate)
        placer = AudioPlacer(out, start_s, sample_rate)
        time_base = float(stream.time_base)  # frame_time() without a Fraction per frame
        going = True
        try:
            for frame in c.decode(stream):
                going = placer.add(resampler.feed(frame, None if frame.pts is None else frame.pts * time_base))
                if not going:
                    break
        except av.error.FFmpegError as exc:
            raise MediaError(path, f"cannot decode audio (FFmpeg: {ffmpeg_message(exc)})") from exc
        if going:
            placer.add(resampler.flush())
    if placer.written == 0 and len(out):
        raise MediaError(path, f"no audio in [{start_s:.3f}, {start_s + duration_s:.3f}) s (past the end?)")
    return torch.from_numpy(out)


@DECODERS.register()
def pyav() -> PyAVDecoder:
    """DECODERS entry "pyav": a :class:`PyAVDecoder` with one decoding thread."""
    return PyAVDecoder()
