"""Rendering one planned file of the demo corpus to disk: a title (or a broken file), a UCF101 or
HMDB51 stand-in clip, or an ESC-50 clip.  Each function takes the output root and the file's plan
from the manifest and returns the size of what it wrote, in bytes."""
from __future__ import annotations

from pathlib import Path

from avplug.data.demo.encoding import MP2_DELAY, MediaWriter, write_wav
from avplug.data.demo.pictures import clip_frames, title_frames
from avplug.data.demo.plan import DOWNSTREAM_FPS, DOWNSTREAM_RATE, DOWNSTREAM_SECONDS, DOWNSTREAM_SIZE, ESC_RATE, ESC_SECONDS
from avplug.data.demo.sounds import clip_audio, title_audio

__all__ = ["render_task"]


def _write_not_media(path: Path, title_id: str) -> None:
    path.write_text(
        "<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n"
        f"<body><h1>Not Found</h1><p>The requested title {title_id} was not found "
        "on this server.</p></body></html>\n"
    )


def _render_title(root: Path, plan: dict, content: dict) -> int:
    """Write one title (or one broken file) of ``content``; the audio goes in about one-second
    chunks between the frames, and a ``truncated`` title keeps the first half of its bytes."""
    path = root / plan["path"]
    path.parent.mkdir(parents=True, exist_ok=True)
    if plan["broken"] == "not_media":
        _write_not_media(path, plan["title_id"])
        return path.stat().st_size
    audio = title_audio(plan, content) if plan["audio"] else None
    writer = MediaWriter(
        path, video_codec="libx264", width=plan["width"], height=plan["height"], fps=plan["fps"],
        audio_codec="aac" if audio is not None else None, sample_rate=plan["sample_rate"],
        channels=plan["channels"], audio_bitrate=48_000 if plan["channels"] == 2 else 128_000,
        metadata={"title": plan["title_id"], "genre": plan["genre"]},
    )
    fps, sr = plan["fps"], plan["sample_rate"]
    audio_pos = 0
    for f, frame in title_frames(plan, content):
        writer.add_frame(frame)
        if audio is not None:
            upto = min(round((f + 1) / fps * sr), audio.shape[1])
            if upto - audio_pos >= sr or f == plan["num_frames"] - 1:
                writer.add_audio(audio[:, audio_pos:upto])
                audio_pos = upto
    if audio is not None:
        writer.add_audio(audio[:, audio_pos:])
    writer.close()
    if plan["broken"] == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    return path.stat().st_size


def _render_video_clip(root: Path, clip: dict) -> int:
    """Write one UCF101 or HMDB51 stand-in clip (MPEG-4 Part 2 + MP2 in .avi)."""
    fps, sr, channels = DOWNSTREAM_FPS, DOWNSTREAM_RATE, clip["channels"]
    path = root / clip["path"]
    # rendered MP2_DELAY samples long and written that much early: decoded, it lines up exactly
    audio = clip_audio(clip, clip["setting"]["ambient"], sr, DOWNSTREAM_SECONDS + MP2_DELAY / sr, channels)
    audio = audio[:, MP2_DELAY:]
    width, height = DOWNSTREAM_SIZE
    writer = MediaWriter(path, video_codec="mpeg4", width=width, height=height, fps=fps,
                         audio_codec="mp2", sample_rate=sr, channels=channels,
                         audio_bitrate=32_000 * channels)
    for frame in clip_frames(clip, size=DOWNSTREAM_SIZE, fps=fps, seconds=DOWNSTREAM_SECONDS):
        writer.add_frame(frame)
    writer.add_audio(audio)
    writer.close()
    return path.stat().st_size


def _render_esc_clip(root: Path, clip: dict) -> int:
    """Write one ESC-50 stand-in clip (16-bit PCM mono .wav)."""
    path = root / clip["path"]
    audio = clip_audio(clip, clip["ambient"], ESC_RATE, ESC_SECONDS, 1, clip["offset"], clip["peak"])[0]
    write_wav(path, audio, ESC_RATE)
    return path.stat().st_size


def render_task(root: str, kind: str, items: list, content: dict | None) -> tuple[str, int]:
    """One unit of work for a worker process: ``kind`` ``"title"`` (items of ``content``),
    ``"video_clip"`` or ``"esc_clip"``; returns ``(kind, bytes written)``.  A failure names the file."""
    base = Path(root)
    total = 0
    for item in items:
        try:
            if kind == "title":
                total += _render_title(base, item, content)
            elif kind == "video_clip":
                total += _render_video_clip(base, item)
            else:
                total += _render_esc_clip(base, item)
        except Exception as exc:
            raise RuntimeError(f"demo corpus: rendering {base / item['path']} failed: {exc}") from exc
    return kind, total
