"""What a media file holds: its header (:func:`probe`), how far it really decodes
(:func:`decodable_extent`, which catches truncated files) and how its timestamps run
(:func:`scan_timestamps`, which finds spliced files).  Ingest catalogs all three."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import av

from avplug.data.decoders.media import best_stream, frame_time, open_media, seek_timestamp
from avplug.data.decoders.timeline import Timeline
from avplug.data.errors import MediaError


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


def probe(path: str | os.PathLike) -> MediaInfo:
    """Read ``path``'s header: duration, frame rate, size, audio streams.

    Raises :class:`MediaError` for an unreadable path, a non-media file or a file without a
    video stream.  A file without audio is returned with ``audio_streams == ()``.
    """
    with open_media(path) as c:
        v = best_stream(c, "video", path)
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
        best_audio = best_stream(c, "audio", path).index if audio else -1
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


def _frame_end(frame, stream, fallback_rate: float) -> float | None:
    t = frame_time(frame, stream)
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
            stream = best_stream(c, kind, path)
            if kind == "video":
                stream.codec_context.thread_type = "AUTO"
            end = _stream_extent(c, stream, info, tail_seconds)
            if end is None:
                raise MediaError(path, f"no {kind} frame decodes")
            ends.append(end)
    return ends[0], ends[1]


def _stream_extent(container, stream, info: MediaInfo, tail_seconds: float) -> float | None:
    """End of the last decodable frame of ``stream``: decode the header's last ``tail_seconds``,
    or bisect for the last region that decodes when nothing does there."""
    start = info.start_s
    target = max(start, start + info.duration_s - tail_seconds)
    end = _decode_to_end(container, stream, target, info.fps)
    if end is None and target > start:
        lo, hi = start, target  # something decodes after lo (checked below), nothing after hi
        if _decode_to_end(container, stream, lo, info.fps, limit=1) is not None:
            while hi - lo > tail_seconds:
                mid = (lo + hi) / 2
                if _decode_to_end(container, stream, mid, info.fps, limit=1) is not None:
                    lo = mid
                else:
                    hi = mid
            end = _decode_to_end(container, stream, lo, info.fps)
    return end


def _decode_to_end(container, stream, target: float, fps: float, limit: int = 0) -> float | None:
    """Seek to ``target`` and decode to the end (or ``limit`` frames): the end time of the last
    frame, or None if nothing decodes."""
    try:
        container.seek(seek_timestamp(target, stream), stream=stream)
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

# Timestamp steps up to this (seconds) are rounding (e.g. millisecond timestamps of a 48 kHz
# stream); a larger one is half an AAC frame or more of overlap or gap.
SPLICE_STEP_S = 0.01


@dataclass(frozen=True)
class TimestampScan:
    """How the timestamps of a file's video and best audio stream run, packet by packet.

    ``largest_step_s`` is the largest distance (seconds) between a packet's timestamp and where
    the previous packet of its stream ended, in either stream: about 0 for a file written in one
    go, a codec frame (~0.02 s) at the joins of parts concatenated with ``-c copy``, the jump
    itself where the clock restarts.  ``clock_jumps`` counts the steps the
    :class:`~avplug.data.decoders.timeline.Timeline` maps away, and ``end_s`` is where the
    earlier-ending stream ends on that jump-free title timeline.
    """

    largest_step_s: float
    clock_jumps: int
    end_s: float


def scan_timestamps(path: str | os.PathLike) -> TimestampScan:
    """Demux (no decoding) every packet of ``path``'s video and best audio stream into a
    :class:`TimestampScan`; packets are taken in decoding order (``dts``)."""
    with open_media(path) as c:
        streams = [best_stream(c, "video", path)] + ([best_stream(c, "audio", path)] if c.streams.audio else [])
        codec_frame = {s.index: _codec_frame_s(s) for s in streams}
        timeline, ends = Timeline(), {}
        try:
            for packet in c.demux(streams):
                t = packet.dts if packet.dts is not None else packet.pts
                if t is None or not packet.size:
                    continue
                tb = packet.time_base
                # an audio packet decodes to a whole codec frame even when a splice trimmed its duration
                duration = codec_frame[packet.stream.index]
                if packet.duration and (packet.stream.type == "video" or not duration):
                    duration = float(packet.duration * tb)
                title = timeline.place(packet.stream.index, float(t * tb), duration)
                ends[packet.stream.index] = max(ends.get(packet.stream.index, title), title + duration)
        except (av.error.FFmpegError, EOFError):
            pass  # a damaged tail: the scan covers what demuxes (decodable_extent judges the damage)
    return TimestampScan(round(timeline.largest_step_s, 6), timeline.clock_jumps, min(ends.values(), default=0.0))


def _codec_frame_s(stream) -> float:
    """Seconds one packet of ``stream`` decodes to, when the codec fixes it (0.0 if not)."""
    if stream.type == "audio":
        cc = stream.codec_context
        return cc.frame_size / cc.sample_rate if cc.frame_size and cc.sample_rate else 0.0
    rate = stream.average_rate or stream.guessed_rate
    return 1.0 / float(rate) if rate else 0.0
