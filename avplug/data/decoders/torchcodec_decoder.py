"""The ``"torchcodec"`` decoder: video by torchcodec on the system FFmpeg libraries, audio by
PyAV placed by its timestamps (contract in :mod:`avplug.data.decoders`).  Optional: constructing it raises ``ImportError`` saying what is
missing when torchcodec or those libraries are; :func:`torchcodec_available` asks first."""
from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import numpy as np
import torch

from avplug.data.decoders.media import TIME_EPS, clip_starts, local_path
from avplug.data.decoders.pyav_decoder import read_audio_by_timestamps
from avplug.data.errors import MediaError
from registry import DECODERS


def _import_torchcodec():
    """torchcodec's video decoder, or ``ImportError`` saying what is missing."""
    try:
        from torchcodec.decoders import VideoDecoder
    except Exception as exc:  # a missing FFmpeg raises RuntimeError/OSError while loading
        raise ImportError(
            "the 'torchcodec' decoder needs the torchcodec package (pip install 'avplug[torchcodec]') "
            "and FFmpeg shared libraries it supports on the library path (Debian: apt-get install ffmpeg); "
            f"importing it failed with {type(exc).__name__}: {exc}. Use DATA.DECODER pyav instead."
        ) from exc
    return VideoDecoder


class TorchCodecDecoder:
    """Decoder on torchcodec (system FFmpeg).  ``seek_mode``: torchcodec's "approximate"
    (trusts the header's frame rate: exact for constant-rate files such as the store's) or
    "exact" (scans the file's packets when opened)."""

    def __init__(self, seek_mode: str = "approximate", threads: int = 1) -> None:
        self._video_cls = _import_torchcodec()
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
        """Same as :meth:`~avplug.data.decoders.pyav_decoder.PyAVDecoder.read_video_clips`."""
        starts = clip_starts(path, starts_s, num_frames, fps)
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
        """Same as :meth:`~avplug.data.decoders.pyav_decoder.PyAVDecoder.read_audio`, by PyAV.

        torchcodec's ``AudioDecoder`` returns the decoded frames of a range joined end to end
        with the first one's time: no per-frame timestamps, so overlapping or missing frames
        (files joined with ``-c copy``, dropped packets) would shift everything after them.
        Audio is placed by its timestamps here, so it is read with PyAV (always installed).
        """
        return read_audio_by_timestamps(path, start_s, duration_s, sample_rate, self.threads)


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
def torchcodec() -> TorchCodecDecoder:
    """DECODERS entry "torchcodec": a :class:`TorchCodecDecoder`; ``ImportError`` if unavailable."""
    return TorchCodecDecoder()
