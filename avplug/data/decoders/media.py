"""Opening media files and reading their streams' timestamps, with failures as :class:`MediaError`.

Every decoder and every writer that reads sources goes through :func:`open_media` (PyAV) or
:func:`local_path` (any other library), so a missing, unreadable, damaged or non-media file is
reported the same way: a :class:`~avplug.data.errors.MediaError` naming the file and the reason.
Times are seconds on the file's presentation timeline; two times within :data:`TIME_EPS` are
the same instant.
"""
from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Iterator, Sequence

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from iopath.common.file_io import g_pathmgr

from avplug.data.errors import MediaError

# Two timestamps closer than this (seconds) are the same instant: containers that round
# timestamps (e.g. to milliseconds) must still map frame i of a 30 fps file to i / 30.
TIME_EPS = 1e-3


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
            reason = f"corrupt or truncated {kind} container (FFmpeg: {ffmpeg_message(exc)})"
        else:
            reason = f"not a media file (FFmpeg does not recognise its format: {ffmpeg_message(exc)})"
        raise MediaError(path, reason) from exc
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(path, f"cannot open the file as media (FFmpeg: {ffmpeg_message(exc)})") from exc
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


def ffmpeg_message(exc: BaseException) -> str:
    """FFmpeg's own words for ``exc`` (its ``strerror``), for a :class:`MediaError` reason."""
    return getattr(exc, "strerror", None) or str(exc)


def best_stream(container, kind: str, path) -> av.stream.Stream:
    """FFmpeg's best ``kind`` ("video" or "audio") stream of ``container`` (else its first);
    :class:`MediaError` naming ``path`` when it has none."""
    streams = getattr(container.streams, kind)
    if not streams:
        raise MediaError(path, f"has no {kind} stream")
    return container.streams.best(kind) or streams[0]


_REFORMATTERS = threading.local()
_INHERITED: list[VideoReformatter] = []  # reformatters of a parent process, never freed in a forked child


def reformatter() -> VideoReformatter:
    """This thread's PyAV ``VideoReformatter``, kept so that libswscale reuses its scaling context.

    ``frame.reformat(...)`` and ``frame.to_ndarray(format=...)`` build a new context on every call,
    which costs many times the conversion itself on small frames (``benchmarks/frame_conversion.py``
    measures both side by side); the output is the same.  Convert with ``threads=1`` (as
    :func:`to_rgb24` does): a context with slice threads that a forked child inherits deadlocks
    when it is reconfigured or freed.  A forked child gets a new reformatter of its own.
    """
    found = getattr(_REFORMATTERS, "entry", None)
    if found is None or found[0] != os.getpid():
        if found is not None:
            _INHERITED.append(found[1])
        found = _REFORMATTERS.entry = (os.getpid(), VideoReformatter())
    return found[1]


def to_rgb24(frame: av.VideoFrame) -> np.ndarray:
    """``frame`` as a ``[H, W, 3]`` uint8 array (``frame.to_ndarray(format="rgb24")`` with a reused context)."""
    return reformatter().reformat(frame, format="rgb24", threads=1).to_ndarray()


def frame_time(frame, stream) -> float | None:
    """Presentation time (seconds) of a decoded ``frame`` of ``stream``; None without a timestamp."""
    if frame.pts is None:
        return None
    tb = frame.time_base or stream.time_base
    return float(frame.pts * tb)


def seek_timestamp(seconds: float, stream) -> int:
    """The stream timestamp to seek to for a frame shown at ``seconds``.

    ``floor(seconds / time_base)`` can land one tick before a frame at exactly ``seconds``
    (3 * 3.2 / (1 / 10240) = 98303.99...), and FFmpeg then seeks to the keyframe before it: a
    whole extra GOP decoded.  Allowing ``TIME_EPS`` (the tolerance frame times are matched with)
    keeps the seek on the frame's own keyframe.
    """
    return math.floor((seconds + TIME_EPS) / stream.time_base)


def clip_starts(path, starts_s: Sequence[float], num_frames: int, fps: float) -> np.ndarray:
    """``starts_s`` as a float64 array after checking a ``read_video_clips`` request: at least
    one clip, at least one frame, a positive rate; :class:`MediaError` naming ``path`` if not."""
    if num_frames < 1:
        raise MediaError(path, f"asked for {num_frames} frames; need at least one")
    if fps <= 0:
        raise MediaError(path, f"asked for frames at {fps} fps; the rate must be positive")
    starts = np.asarray(starts_s, np.float64).reshape(-1)
    if starts.size == 0:
        raise MediaError(path, "asked for no clips")
    return starts
