"""Writing media files: H.264 + AAC titles, MPEG-4 Part 2 + MP2 stand-in clips, 16-bit PCM wavs.

Encoders run single-threaded, so a file's bytes are a function of its frames and samples (the
corpus renders files in parallel instead).  Video frames are uint8 RGB, audio ``(channels,
samples)`` float in ``[-1, 1]`` in ffmpeg's layout order; both are fed in time order.
"""
from __future__ import annotations

import wave
from pathlib import Path

import av
import numpy as np

__all__ = ["MP2_DELAY", "MediaWriter", "write_wav"]

_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}
MP2_DELAY = 481  # samples the MP2 decoder's filter bank delays the sound by


class MediaWriter:
    """One output file: a video stream and optionally an audio stream, fed in time order."""

    def __init__(self, path: Path, *, video_codec: str, width: int, height: int, fps: int,
                 audio_codec: str | None, sample_rate: int = 0, channels: int = 0, audio_bitrate: int = 0,
                 metadata: dict | None = None):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(path), "w")
        for key, value in (metadata or {}).items():
            self.container.metadata[key] = value
        self.video = self.container.add_stream(video_codec, rate=fps)
        self.video.width, self.video.height, self.video.pix_fmt = width, height, "yuv420p"
        self.video.codec_context.thread_count = 1  # deterministic output, parallelism is per file
        if video_codec == "libx264":
            self.video.options = {"preset": "ultrafast", "crf": "27", "g": str(4 * fps)}
        else:
            self.video.bit_rate = 64_000
            self.video.codec_context.gop_size = 2 * fps
        self.audio = None
        if audio_codec is not None:
            self.audio = self.container.add_stream(audio_codec, rate=sample_rate, layout=_LAYOUTS[channels])
            self.audio.bit_rate = audio_bitrate
            if audio_codec == "aac":
                self.audio.options = {"aac_coder": "fast"}
            self.layout, self.sample_rate = _LAYOUTS[channels], sample_rate
        self.frames = 0
        self.samples = 0

    def add_frame(self, rgb: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = self.frames
        self.frames += 1
        self.container.mux(self.video.encode(frame))

    def add_audio(self, chunk: np.ndarray) -> None:
        """``chunk``: ``(channels, samples)`` float in [-1, 1]."""
        if chunk.shape[1] == 0:
            return
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk, dtype=np.float32), format="fltp", layout=self.layout)
        frame.sample_rate = self.sample_rate
        frame.pts = self.samples
        self.samples += chunk.shape[1]
        self.container.mux(self.audio.encode(frame))

    def close(self) -> None:
        self.container.mux(self.video.encode(None))
        if self.audio is not None:
            self.container.mux(self.audio.encode(None))
        self.container.close()


def write_wav(path: Path, mono: np.ndarray, sample_rate: int) -> None:
    """``mono`` (float in ``[-1, 1]``) as a 16-bit PCM mono wav (rounded, clipped to the int16 range);
    creates the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = np.clip(np.round(mono * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())
