"""Media decoders: probing, frame-accurate video reads and sample-accurate mono audio reads.

Two decoders are registered in :data:`registry.DECODERS` (contract in its docstring):

- ``"pyav"``: :class:`PyAVDecoder`, PyAV's bundled FFmpeg; always available.
- ``"torchcodec"``: :class:`TorchCodecDecoder`, torchcodec on the system FFmpeg libraries; raises
  ``ImportError`` on construction when torchcodec or those libraries are missing.

Both read times on the file's presentation timeline (stream timestamps in seconds, which start
at 0 for most files and for every store file):

- ``read_video(path, start_s, num_frames, fps)`` returns the frames *displayed* at
  ``start_s + i / fps`` (the last frame whose timestamp is at most that time, within
  :data:`TIME_EPS`), ``uint8 [num_frames, H, W, 3]`` RGB.  Times before the first frame get the
  first frame, times past the last frame get the last frame; a ``start_s`` past the end of the
  stream is an error.
- ``read_video_clips(path, starts_s, num_frames, fps)`` does the same for several clips of one
  file, opening it once: ``uint8 [len(starts_s), num_frames, H, W, 3]``.  The snippet store uses
  it when a decoder has it (k snippets of one title come from one file).
- ``read_audio(path, start_s, duration_s, sample_rate)`` returns ``round(duration_s *
  sample_rate)`` mono samples, ``float32``, sample ``j`` at ``start_s + j / sample_rate``.  Every
  channel layout is accepted and down-mixed as the mean of its channels (the same in both
  decoders); any sample rate is resampled.  Parts of the window outside the audio are zeros; a
  window entirely past the end is an error.

Failures raise :class:`avplug.data.errors.MediaError` naming the file.  :func:`probe` reads the
container header (what ingest catalogs) and :func:`decodable_extent` decodes the tail to catch
truncated files.  :func:`get_default_decoder` returns the faster decoder that is importable
(``DEFAULT_DECODER``; measured by ``benchmarks/decoder_compare.py``), falling back to PyAV.
"""
from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np
import torch
from iopath.common.file_io import g_pathmgr

from avplug.data.errors import MediaError
from registry import DECODERS

# Two timestamps closer than this (seconds) are the same instant: containers that round
# timestamps (e.g. to milliseconds) must still map frame i of a 30 fps file to i / 30.
TIME_EPS = 1e-3
# Seconds decoded before an audio window so that codecs with overlapping frames (AAC, MP3, ...)
# and the resampler have settled when the window starts.
AUDIO_PREROLL_S = 0.25
# Consecutive clips at most this far apart (seconds) are decoded without seeking.
CONTIGUOUS_S = 0.5
# Registry name of the decoder get_default_decoder() prefers: PyAV read store snippets faster than
# torchcodec in every access pattern of benchmarks/decoder_compare.py (results/decoder_compare.json).
DEFAULT_DECODER = "pyav"


# ---------------------------------------------------------------------------------------------
# Opening and probing
# ---------------------------------------------------------------------------------------------
def local_path(path: str | os.PathLike) -> str:
    """A local file for ``path``: itself, or iopath's cached copy for a remote URI."""
    path = str(path)
    if "://" not in path:
        return path
    try:
        return g_pathmgr.get_local_path(path)
    except Exception as exc:  # iopath handlers raise their own types
        raise MediaError(path, f"cannot fetch the file through iopath ({type(exc).__name__}: {exc})") from exc


@contextlib.contextmanager
def open_media(path: str | os.PathLike) -> Iterator[av.container.InputContainer]:
    """``av.open`` with errors turned into :class:`MediaError` naming ``path`` and the reason."""
    local = local_path(path)
    if not os.path.exists(local):
        raise MediaError(path, "no such file")
    if os.path.isdir(local):
        raise MediaError(path, "is a folder, not a media file")
    if not os.access(local, os.R_OK):
        raise MediaError(path, "cannot read the file (permission denied)")
    try:
        container = av.open(local, metadata_errors="ignore")
    except av.error.InvalidDataError as exc:
        kind = _container_signature(local)
        if kind:
            reason = f"corrupt or truncated {kind} container (FFmpeg: {_ffmpeg_msg(exc)})"
        else:
            reason = f"not a media file (FFmpeg does not recognise its format: {_ffmpeg_msg(exc)})"
        raise MediaError(path, reason) from exc
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(path, f"cannot open the file as media (FFmpeg: {_ffmpeg_msg(exc)})") from exc
    try:
        yield container
    finally:
        container.close()


def _container_signature(local: str) -> str:
    """The container a file's first bytes announce ("" if none): tells a damaged media file
    from a file that is not media at all."""
    try:
        with open(local, "rb") as f:
            head = f.read(192)
    except OSError:
        return ""
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
        return "MP4/QuickTime"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "Matroska/WebM"
    if head[:4] == b"RIFF":
        return "RIFF (AVI/WAV)"
    if head[:4] == b"OggS":
        return "Ogg"
    if head[:3] == b"FLV":
        return "FLV"
    if head[:4] == b"\x00\x00\x01\xba":
        return "MPEG program stream"
    if head[:4] == b"\x30\x26\xb2\x75":
        return "ASF/WMV"
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
        return "MPEG transport stream"
    return ""


def quiet_ffmpeg() -> None:
    """Silence FFmpeg's own console messages in this process (batch tools report every
    failure through :class:`MediaError` reasons instead)."""
    av.logging.set_libav_level(av.logging.FATAL)


def _ffmpeg_msg(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


@dataclass(frozen=True)
class AudioStreamInfo:
    """One audio stream of a file, from its header."""

    index: int
    codec: str
    channels: int
    layout: str
    sample_rate: int


@dataclass(frozen=True)
class MediaInfo:
    """What a media file's header says (no decoding).

    ``start_s`` is the container start time (the origin of the timeline) and ``duration_s`` the
    container duration after it.  ``fps`` is the video stream's average frame rate (0 if
    unknown), ``width`` x ``height`` its coded size and ``sample_aspect_ratio`` its pixel aspect
    (1.0 for square pixels).  ``audio_streams`` lists every audio stream; the ``audio_*``
    properties describe the one decoders use (FFmpeg's best audio stream).
    """

    path: str
    duration_s: float
    start_s: float
    fps: float
    width: int
    height: int
    video_codec: str
    sample_aspect_ratio: float = 1.0
    audio_streams: tuple[AudioStreamInfo, ...] = field(default=())
    best_audio: int = -1

    @property
    def has_audio(self) -> bool:
        return bool(self.audio_streams)

    def _audio(self) -> AudioStreamInfo | None:
        for s in self.audio_streams:
            if s.index == self.best_audio:
                return s
        return self.audio_streams[0] if self.audio_streams else None

    @property
    def audio_channels(self) -> int:
        s = self._audio()
        return s.channels if s else 0

    @property
    def audio_rate(self) -> int:
        s = self._audio()
        return s.sample_rate if s else 0


def _best(container, kind: str, path) -> av.stream.Stream:
    streams = getattr(container.streams, kind)
    if not streams:
        raise MediaError(path, f"has no {kind} stream")
    return container.streams.best(kind) or streams[0]


def probe(path: str | os.PathLike) -> MediaInfo:
    """Read ``path``'s header: duration, frame rate, size, audio streams.

    Raises :class:`MediaError` for an unreadable path, a non-media file or a file without a
    video stream.  A file without audio is returned with ``audio_streams == ()``.
    """
    with open_media(path) as c:
        v = _best(c, "video", path)
        cc = v.codec_context
        start = c.start_time / av.time_base if c.start_time is not None else 0.0
        if c.duration is not None and c.duration > 0:
            duration = c.duration / av.time_base
        elif v.duration is not None and v.time_base is not None:
            duration = float(v.duration * v.time_base)
        else:
            duration = 0.0
        rate = v.average_rate or v.guessed_rate or v.base_rate
        sar = v.sample_aspect_ratio or cc.sample_aspect_ratio
        audio = []
        for a in c.streams.audio:
            ac = a.codec_context
            audio.append(
                AudioStreamInfo(
                    index=a.index,
                    codec=ac.name or "",
                    channels=int(ac.channels or 0),
                    layout=ac.layout.name if ac.layout is not None else "",
                    sample_rate=int(ac.sample_rate or a.rate or 0),
                )
            )
        best_audio = _best(c, "audio", path).index if audio else -1
        return MediaInfo(
            path=str(path),
            duration_s=float(duration),
            start_s=float(start),
            fps=float(rate) if rate else 0.0,
            width=int(cc.width or 0),
            height=int(cc.height or 0),
            video_codec=cc.name or "",
            sample_aspect_ratio=float(sar) if sar else 1.0,
            audio_streams=tuple(audio),
            best_audio=best_audio,
        )


def _frame_time(frame, stream) -> float | None:
    if frame.pts is None:
        return None
    tb = frame.time_base or stream.time_base
    return float(frame.pts * tb)


def _frame_end(frame, stream, fallback_rate: float) -> float | None:
    t = _frame_time(frame, stream)
    if t is None:
        return None
    if isinstance(frame, av.AudioFrame):
        return t + frame.samples / frame.sample_rate
    tb = frame.time_base or stream.time_base
    if frame.duration:
        return t + float(frame.duration * tb)
    return t + (1.0 / fallback_rate if fallback_rate > 0 else 0.0)


def decodable_extent(path: str | os.PathLike, tail_seconds: float = 5.0) -> tuple[float, float]:
    """End times (seconds) of the last decodable video frame and audio sample of ``path``.

    Seeks to ``tail_seconds`` before the header's end and decodes to the end of the file, so a
    truncated file shows up as an extent short of its header duration.  When nothing decodes
    there, a bisection over seek positions (each probe decodes one frame) finds the last
    decodable region first, so a long truncated file costs a few probes, not a full decode.
    The audio end is 0.0 without an audio stream.
    """
    info = probe(path)
    ends = []
    with open_media(path) as c:
        for kind in ("video", "audio"):
            if not getattr(c.streams, kind):
                ends.append(0.0)
                continue
            stream = _best(c, kind, path)
            if kind == "video":
                stream.codec_context.thread_type = "AUTO"
            start = info.start_s
            target = max(start, start + info.duration_s - tail_seconds)
            end = _decode_to_end(c, stream, target, info.fps)
            if end is None and target > start:
                lo, hi = start, target  # something decodes after lo (checked below), nothing after hi
                if _decode_to_end(c, stream, lo, info.fps, limit=1) is not None:
                    while hi - lo > tail_seconds:
                        mid = (lo + hi) / 2
                        if _decode_to_end(c, stream, mid, info.fps, limit=1) is not None:
                            lo = mid
                        else:
                            hi = mid
                    end = _decode_to_end(c, stream, lo, info.fps)
            if end is None:
                raise MediaError(path, f"no {kind} frame decodes")
            ends.append(end)
    return ends[0], ends[1]


def _seek_timestamp(seconds: float, stream) -> int:
    """The stream timestamp to seek to for a frame shown at ``seconds``.

    ``floor(seconds / time_base)`` can land one tick before a frame at exactly ``seconds``
    (3 * 3.2 / (1 / 10240) = 98303.99...), and FFmpeg then seeks to the keyframe before it: a
    whole extra GOP decoded.  Allowing ``TIME_EPS`` (the tolerance frame times are matched with)
    keeps the seek on the frame's own keyframe.
    """
    return math.floor((seconds + TIME_EPS) / stream.time_base)


def _decode_to_end(container, stream, target: float, fps: float, limit: int = 0) -> float | None:
    """Seek to ``target`` and decode to the end (or ``limit`` frames): the end time of the last
    frame, or None if nothing decodes."""
    try:
        container.seek(_seek_timestamp(target, stream), stream=stream)
    except av.error.FFmpegError:
        return None
    end, n = None, 0
    try:
        for frame in container.decode(stream):
            e = _frame_end(frame, stream, fps)
            if e is not None:
                end = e if end is None else max(end, e)
                n += 1
                if limit and n >= limit:
                    break
    except (av.error.FFmpegError, EOFError):
        pass  # a truncated tail: what decoded so far is the extent
    return end


# ---------------------------------------------------------------------------------------------
# Video: frames displayed at given times
# ---------------------------------------------------------------------------------------------
class _Decoded:
    """A decoded frame with its time and a lazily converted RGB array."""

    __slots__ = ("_rgb", "frame", "time")

    def __init__(self, time: float, frame) -> None:
        self.time, self.frame, self._rgb = time, frame, None

    def rgb(self) -> np.ndarray:
        if self._rgb is None:
            self._rgb = self.frame.to_ndarray(format="rgb24")
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
            self.container.seek(_seek_timestamp(target, self.stream), stream=self.stream)
        except av.error.FFmpegError as exc:
            raise MediaError(self.path, f"cannot seek to {t:.3f} s (FFmpeg: {_ffmpeg_msg(exc)})") from exc
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
                raise MediaError(self.path, f"cannot decode video (FFmpeg: {_ffmpeg_msg(exc)})") from exc
            t = _frame_time(frame, self.stream)
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


def _check_request(path, num_frames: int, fps: float) -> None:
    if num_frames < 1:
        raise MediaError(path, f"asked for {num_frames} frames; need at least one")
    if fps <= 0:
        raise MediaError(path, f"asked for frames at {fps} fps; the rate must be positive")


def _mono_window(path, start_s: float, duration_s: float, sample_rate: int) -> np.ndarray:
    if duration_s <= 0 or sample_rate <= 0:
        raise MediaError(path, f"asked for {duration_s} s of audio at {sample_rate} Hz; both must be positive")
    return np.zeros(round(duration_s * sample_rate), np.float32)


# ---------------------------------------------------------------------------------------------
# Audio: mono, resampled, placed by timestamp
# ---------------------------------------------------------------------------------------------
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
            t = _frame_time(frame, stream) if stream is not None else (float(frame.time) if frame.time is not None else None)
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


# ---------------------------------------------------------------------------------------------
# The decoders
# ---------------------------------------------------------------------------------------------
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
        _check_request(path, num_frames, fps)
        starts = np.asarray(starts_s, np.float64).reshape(-1)
        if starts.size == 0:
            raise MediaError(path, "asked for no clips")
        offsets = np.arange(num_frames, dtype=np.float64) / fps
        with open_media(path) as c:
            stream = _best(c, "video", path)
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
        out = _mono_window(path, start_s, duration_s, sample_rate)
        with open_media(path) as c:
            stream = _best(c, "audio", path)
            self._setup(stream)
            seek_to = start_s - AUDIO_PREROLL_S
            if stream.start_time is None or seek_to > float(stream.start_time * stream.time_base):
                try:
                    c.seek(math.floor(seek_to / stream.time_base), stream=stream)
                except av.error.FFmpegError as exc:
                    raise MediaError(path, f"cannot seek to {start_s:.3f} s (FFmpeg: {_ffmpeg_msg(exc)})") from exc
            resampler = MonoResampler(sample_rate)
            placer = AudioPlacer(out, start_s, sample_rate)
            going = True
            try:
                for frame in c.decode(stream):
                    chunks = resampler.feed(frame, stream)
                    going = placer.add(resampler.first_time, chunks)
                    if not going:
                        break
            except av.error.FFmpegError as exc:
                raise MediaError(path, f"cannot decode audio (FFmpeg: {_ffmpeg_msg(exc)})") from exc
            if going and resampler.first_time is not None:
                placer.add(resampler.first_time, resampler.flush())
        if placer.written == 0 and len(out):
            raise MediaError(path, f"no audio in [{start_s:.3f}, {start_s + duration_s:.3f}) s (past the end?)")
        return torch.from_numpy(out)


def _import_torchcodec():
    """torchcodec's decoders, or ``ImportError`` saying what is missing."""
    try:
        from torchcodec.decoders import AudioDecoder, VideoDecoder
    except Exception as exc:  # a missing FFmpeg raises RuntimeError/OSError while loading
        raise ImportError(
            "the 'torchcodec' decoder needs the torchcodec package (pip install 'avplug[torchcodec]') "
            "and FFmpeg shared libraries it supports on the library path (Debian: apt-get install ffmpeg); "
            f"importing it failed with {type(exc).__name__}: {exc}. Use DATA.DECODER pyav instead."
        ) from exc
    return VideoDecoder, AudioDecoder


class TorchCodecDecoder:
    """Decoder on torchcodec (system FFmpeg).  ``seek_mode``: torchcodec's "approximate"
    (trusts the header's frame rate: exact for constant-rate files such as the store's) or
    "exact" (scans the file's packets when opened)."""

    def __init__(self, seek_mode: str = "approximate", threads: int = 1) -> None:
        self._video_cls, self._audio_cls = _import_torchcodec()
        if seek_mode not in ("approximate", "exact"):
            raise ValueError(f"seek_mode must be 'approximate' or 'exact', got {seek_mode!r}")
        self.seek_mode, self.threads = seek_mode, int(threads)

    def _open_video(self, path):
        local = _checked_local(path)
        try:
            return self._video_cls(local, dimension_order="NHWC", seek_mode=self.seek_mode, num_ffmpeg_threads=self.threads)
        except (RuntimeError, ValueError) as exc:
            raise MediaError(path, f"cannot open the video (torchcodec: {exc})") from exc

    def read_video_clips(
        self, path: str | os.PathLike, starts_s: Sequence[float], num_frames: int, fps: float
    ) -> torch.Tensor:
        """Same as :meth:`PyAVDecoder.read_video_clips`."""
        _check_request(path, num_frames, fps)
        starts = np.asarray(starts_s, np.float64).reshape(-1)
        if starts.size == 0:
            raise MediaError(path, "asked for no clips")
        dec = self._open_video(path)
        md = dec.metadata
        begin, end = float(md.begin_stream_seconds), float(md.end_stream_seconds)
        late = starts[starts > end + TIME_EPS]
        if late.size:
            raise MediaError(path, f"start {late[0]:.3f} s is past the end of the video ({end:.3f} s)")
        times = starts[:, None] + np.arange(num_frames, dtype=np.float64)[None, :] / fps
        # the frame displayed at t: nudge forward by TIME_EPS like PyAVDecoder, clamp to the stream
        times = np.clip(times + TIME_EPS, begin, np.nextafter(end, -np.inf))
        try:
            batch = dec.get_frames_played_at(seconds=times.reshape(-1).tolist())
        except (RuntimeError, ValueError, IndexError) as exc:
            raise MediaError(path, f"cannot decode video (torchcodec: {exc})") from exc
        data = batch.data
        return data.reshape(starts.size, num_frames, *data.shape[1:])

    def read_video(self, path: str | os.PathLike, start_s: float, num_frames: int, fps: float) -> torch.Tensor:
        return self.read_video_clips(path, [start_s], num_frames, fps)[0]

    def read_audio(self, path: str | os.PathLike, start_s: float, duration_s: float, sample_rate: int) -> torch.Tensor:
        """Same as :meth:`PyAVDecoder.read_audio`."""
        out = _mono_window(path, start_s, duration_s, sample_rate)
        local = _checked_local(path)
        try:
            dec = self._audio_cls(local, sample_rate=int(sample_rate))
        except (RuntimeError, ValueError) as exc:
            reason = "has no audio stream" if "audio" in str(exc).lower() and "stream" in str(exc).lower() else f"cannot open the audio (torchcodec: {exc})"
            raise MediaError(path, reason) from exc
        md = dec.metadata
        begin = float(md.begin_stream_seconds_from_header or 0.0)
        lo = max(start_s - AUDIO_PREROLL_S, begin)  # the resampler settles before the window
        hi = start_s + duration_s
        try:
            samples = dec.get_samples_played_in_range(lo, hi)
        except (RuntimeError, ValueError, IndexError) as exc:
            raise MediaError(path, f"no audio in [{start_s:.3f}, {hi:.3f}) s (torchcodec: {exc})") from exc
        x = samples.data.mean(dim=0).numpy().astype(np.float32, copy=False)
        placer = AudioPlacer(out, start_s, sample_rate)
        placer.add(float(samples.pts_seconds), [(0, x)])
        if placer.written == 0 and len(out):
            raise MediaError(path, f"no audio in [{start_s:.3f}, {hi:.3f}) s (past the end?)")
        return torch.from_numpy(out)


def _checked_local(path) -> str:
    local = local_path(path)
    if not os.path.isfile(local):
        raise MediaError(path, "no such file")
    return local


@functools.cache
def torchcodec_available() -> bool:
    """Whether the torchcodec decoder can be constructed here."""
    try:
        _import_torchcodec()
    except ImportError:
        return False
    return True


@DECODERS.register()
def pyav() -> PyAVDecoder:
    """DECODERS entry "pyav": a :class:`PyAVDecoder` with one decoding thread."""
    return PyAVDecoder()


@DECODERS.register()
def torchcodec() -> TorchCodecDecoder:
    """DECODERS entry "torchcodec": a :class:`TorchCodecDecoder`; ``ImportError`` if unavailable."""
    return TorchCodecDecoder()


def get_default_decoder():
    """An instance of :data:`DEFAULT_DECODER`, or of ``"pyav"`` when that one cannot be imported."""
    if DEFAULT_DECODER == "torchcodec" and not torchcodec_available():
        return PyAVDecoder()
    return DECODERS.get(DEFAULT_DECODER)()
