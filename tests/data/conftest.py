"""Tiny media files for the catalog / store / decoder tests, made with PyAV.

The "timecode" source encodes time in both modalities so that alignment can be checked exactly:

- video frame ``n`` (at ``n / fps`` seconds) draws ``n`` as ``BITS`` black/white vertical bars
  (most significant bit left), which survive H.264 and downscaling;
- audio holds short Gaussian-windowed 2 kHz bursts centred at ``burst_times(seconds)``, placed
  at offsets that do not repeat with the snippet length, in silence.
"""
from __future__ import annotations

import fractions
from pathlib import Path

import av
import numpy as np
import pytest

BITS = 10
BURST_HZ = 2000.0
BURST_SIGMA_S = 0.001


def burst_times(seconds: float) -> np.ndarray:
    """Centres of the audio bursts of a timecode source ``seconds`` long."""
    return np.arange(0.13, seconds - 0.05, 0.37)


def frame_image(n: int, width: int, height: int) -> np.ndarray:
    """An RGB image whose bars spell ``n`` in binary (white = 1)."""
    img = np.zeros((height, width, 3), np.uint8)
    bar = width // BITS
    for b in range(BITS):
        if (n >> (BITS - 1 - b)) & 1:
            img[:, b * bar : (b + 1) * bar] = 255
    return img


def read_counter(img: np.ndarray) -> int:
    """Inverse of :func:`frame_image` on a decoded (possibly resized) RGB frame."""
    h, w = img.shape[:2]
    gray = img.astype(np.float32).mean(axis=2)
    value = 0
    for b in range(BITS):
        x = int((b + 0.5) * w / BITS)
        value = (value << 1) | int(gray[h // 4 : 3 * h // 4, x].mean() > 127)
    return value


def burst_signal(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    out = np.zeros_like(t)
    for c in burst_times(seconds):
        out += 0.8 * np.exp(-0.5 * ((t - c) / BURST_SIGMA_S) ** 2) * np.sin(2 * np.pi * BURST_HZ * (t - c))
    return out.astype(np.float32)


def make_media(
    path: Path,
    seconds: float,
    *,
    fps: int = 25,
    size: tuple[int, int] = (160, 96),
    audio_rate: int = 44100,
    layout: str | None = "stereo",
    video: bool = True,
    faststart: bool = True,
) -> Path:
    """Write an H.264 (+ AAC) mp4 of the timecode pattern; ``layout=None`` means no audio.

    Audio and video are encoded side by side, so the file interleaves them as real files do
    (a file cut short loses the end of both)."""
    opts = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=opts) as out:
        vs = as_ = None
        if video:
            vs = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "18", "threads": "1"})
            vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
        if layout is not None:
            as_ = out.add_stream("aac", rate=audio_rate, layout=layout)
            planar = np.repeat(burst_signal(seconds, audio_rate)[None], av.AudioLayout(layout).nb_channels, axis=0)
        block, sent = 1024, 0  # audio samples encoded so far

        def audio_until(t: float) -> None:
            nonlocal sent
            while as_ is not None and sent < planar.shape[1] and sent < t * audio_rate:
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planar[:, sent : sent + block]), format="fltp", layout=layout)
                frame.sample_rate, frame.pts, frame.time_base = audio_rate, sent, fractions.Fraction(1, audio_rate)
                for packet in as_.encode(frame):
                    out.mux(packet)
                sent += block

        for n in range(round(seconds * fps)) if vs is not None else ():
            frame = av.VideoFrame.from_ndarray(frame_image(n, *size), format="rgb24")
            frame.pts, frame.time_base = n, fractions.Fraction(1, fps)
            for packet in vs.encode(frame):
                out.mux(packet)
            audio_until((n + 1) / fps)
        audio_until(seconds + 1.0)
        for stream in (vs, as_):
            if stream is not None:
                for packet in stream.encode():
                    out.mux(packet)
    return path


def make_scenes_media(path: Path, seconds: float, cuts: tuple[float, ...], *, fps: int = 25, size=(96, 64)) -> Path:
    """An mp4 of solid-colour scenes that cut at ``cuts`` seconds, with the burst audio track."""
    colors = [(200, 30, 30), (30, 30, 200), (250, 250, 60)]  # each cut scores well over ContentDetector's 27
    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "threads": "1"})
        vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
        as_ = out.add_stream("aac", rate=22050, layout="mono")
        for n in range(round(seconds * fps)):
            scene = sum(n / fps >= c for c in cuts)
            img = np.empty((size[1], size[0], 3), np.uint8)
            img[:] = colors[scene % len(colors)]
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = n, fractions.Fraction(1, fps)
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        mono = burst_signal(seconds, 22050)
        for start in range(0, mono.size, 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(mono[None, start : start + 1024]), format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 22050, start, fractions.Fraction(1, 22050)
            for packet in as_.encode(frame):
                out.mux(packet)
        for packet in as_.encode():
            out.mux(packet)
    return path


# Titles of media_dir that ingest accepts, and the rejected files with a word of their reason.
GOOD = {"timecode": 8.0, "surround": 4.0, "mono48k": 3.4, "scenes": 8.0}
REJECTED = {
    "noaudio.mp4": "no audio stream",
    "short.mp4": "shorter than one snippet",
    "truncated.mp4": "truncated",
    "nomoov.mp4": "corrupt or truncated MP4",
    "notmedia.mp4": "not a media file",
}
SCENE_CUTS = (2.0, 6.4)  # at 5 fps, frames 10 and 32: snippets 1 and 4 of 1.6 s


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    """A folder of sources: usable titles and one file for every rejection reason."""
    root = tmp_path_factory.mktemp("media")
    make_media(root / "timecode.mp4", GOOD["timecode"])
    make_media(root / "surround.mp4", GOOD["surround"], layout="5.1", audio_rate=44100, size=(96, 128))
    make_media(root / "mono48k.mp4", GOOD["mono48k"], layout="mono", audio_rate=48000, fps=30)
    make_scenes_media(root / "scenes.mp4", GOOD["scenes"], SCENE_CUTS)
    make_media(root / "noaudio.mp4", 3.0, layout=None)
    make_media(root / "short.mp4", 1.0)
    data = make_media(root / "full.tmp", 8.0).read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])  # index first, media data cut
    data = make_media(root / "moovlast.tmp", 4.0, faststart=False).read_bytes()
    (root / "nomoov.mp4").write_bytes(data[: len(data) * 2 // 3])  # media data first, index lost
    for tmp in ("full.tmp", "moovlast.tmp"):
        (root / tmp).unlink()
    (root / "notmedia.mp4").write_text("this is not a video\n" * 50)
    (root / "readme.txt").write_text("no media extension: not scanned\n")
    return root


@pytest.fixture(scope="session")
def meta_csv(media_dir) -> Path:
    """meta.csv beside media_dir listing every media file: timecode and scenes are two episodes
    of one show; the bad files keep their file names as title ids."""
    path = media_dir.parent / f"{media_dir.name}-meta.csv"
    rows = [
        "path,title_id,show_id,genre",
        f"{media_dir.name}/timecode.mp4,tc,showA,Drama",
        f"{media_dir.name}/scenes.mp4,sc,showA,Drama",
        f"{media_dir.name}/surround.mp4,sur,,Action",
        f"{media_dir.name}/mono48k.mp4,mono,,Comedy",
    ] + [f"{media_dir.name}/{name},,,Drama" for name in sorted(REJECTED)]
    path.write_text("\n".join(rows) + "\n")
    return path


# The store and input sizes these tests are written for, pinned so they do not move with the demo recipe.
STORE_SIZES = ["DATA.STORE_SHORT_SIDE", "64", "INPUT.VIDEO.SHORT_SIDE", "64", "INPUT.VIDEO.CROP", "56"]


@pytest.fixture(scope="session")
def store_sizes():
    """:data:`STORE_SIZES` as ``KEY VALUE`` overrides, for tools run on the stores of these tests."""
    return list(STORE_SIZES)


@pytest.fixture(scope="session")
def demo_cfg():
    from avplug.config import load_config

    return load_config("demo.yaml", STORE_SIZES)


@pytest.fixture(scope="session")
def demo_catalog(media_dir, meta_csv, demo_cfg, tmp_path_factory):
    """ingest() of media_dir with meta.csv at the demo snippet length, one worker."""
    from avplug.data.catalog import ingest

    out = tmp_path_factory.mktemp("catalog")
    result = ingest(
        str(media_dir), str(out), snippet_seconds=demo_cfg.DATA.SNIPPET_SECONDS, meta=str(meta_csv),
        heldout_fraction=0.25, seed=0, workers=1, progress=False,
    )  # fmt: skip
    return out, result


@pytest.fixture(scope="session")
def demo_store(demo_catalog, demo_cfg, tmp_path_factory):
    """The demo-size store of demo_catalog, written by one local run."""
    from avplug.data.store import StoreSpec
    from avplug.data.store_writer import preprocess

    out = tmp_path_factory.mktemp("store")
    summary = preprocess(str(demo_catalog[0]), str(out), StoreSpec.from_cfg(demo_cfg), workers=1, progress=False)
    return out, summary


@pytest.fixture(scope="session")
def timecode():
    """The pattern helpers of this module (test modules cannot import a conftest by name)."""
    import types

    return types.SimpleNamespace(
        read_counter=read_counter, burst_times=burst_times, make_media=make_media, frame_image=frame_image
    )


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory):
    """One small demo corpus with everything (2 movies, a show of 2 episodes of 8 s, the broken files,
    the full-size downstream stand-ins), rendered by 2 workers; shared by the corpus tests and the
    downstream-dataset tests, as the stand-ins take most of its time."""
    from avplug.data.demo import generate_demo_corpus

    sizes = {"num_movies": 2, "num_shows": 1, "episodes_per_show": 2, "title_seconds": 8.0}
    return generate_demo_corpus(tmp_path_factory.mktemp("demo") / "corpus", seed=0, workers=2, progress=False, **sizes)
