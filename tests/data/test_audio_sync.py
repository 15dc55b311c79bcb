"""Audio stays in sync with the picture along whole titles whose timestamps overlap, gap or jump.

Each source is built from parts that carry one *content clock*: video frame ``n`` of the content
draws ``n`` in binary bars (``conftest.frame_image``) and the audio holds a click (a 1 ms 2 kHz
burst) every :data:`CLICK_PERIOD_S` of content.  Video runs at 46.875 fps, one frame per 1024
samples at 48 kHz: every shift a splice makes (an AAC frame of priming or padding) is a whole
video frame, so a store frame tells exactly how far the picture is shifted.  A click's audio
shift minus the picture's shift at the same place is the title's audio-video offset there.

Sources (made with the project's encoders, PyAV, plus the ffmpeg CLI):

- ``concat_mp4`` / ``concat_ts``: three parts joined by the concat demuxer with ``-c copy``
  (each part's last AAC frame overlaps the next part's priming frame);
- ``cat_ts``: three MPEG-TS parts concatenated byte by byte (both clocks restart at every join);
- ``audio_gap``: one file with 14 AAC packets (0.3 s) of audio dropped in the middle;
- ``late_audio``: one file whose audio packets before 0.7 s are dropped;
- ``video_jump``: an MPEG-TS file whose video clock jumps 20 s ahead at 4.8 s (the audio's does
  not; in MP4 the same timestamps would be a frame lasting 20 s, not a jump).
"""
from __future__ import annotations

import fractions
import json
import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from scipy.signal import hilbert
from torch import nn

from avplug.data.catalog import ingest, load_catalog
from avplug.data.decoders.resampling import AudioPlacer, MonoResampler
from avplug.data.decoders.timeline import MAX_BACKSTEP_S, MAX_GAP_S, Timeline
from avplug.data.decoders.torchcodec_decoder import torchcodec_available
from avplug.data.store import StoreSpec
from avplug.data.store_writer import preprocess
from avplug.evaluation.clips import DownstreamClips
from registry import DECODERS

FPS = fractions.Fraction(375, 8)  # 46.875 fps: one video frame per AAC frame of 1024 samples at 48 kHz
SOURCE_RATE = 48000
AAC_FRAME_S = 1024 / SOURCE_RATE  # the bound: at most one audio frame of offset anywhere
PART_FRAMES = 150  # 3.2 s
CLICK_PERIOD_S, CLICK_PHASE_S = 0.5, 0.1
SIZE = (160, 16)  # ten 16-px counter bars
SPEC = StoreSpec(snippet_frames=15, fps=float(FPS), short_side=16, audio_rate=16000)  # 0.32 s snippets
GAP = (3.0, 3.3)  # audio packets starting in this span (s) are dropped from audio_gap
LATE_START_S = 0.7
VIDEO_JUMP = (4.8, 20.0)  # video packets from 4.8 s on are stamped 20 s later in video_jump

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg CLI")


def click_times(first_frame: int, frames: int) -> np.ndarray:
    """Content times of the clicks in content frames ``[first_frame, first_frame + frames)``."""
    t0, t1 = float(first_frame / FPS), float((first_frame + frames) / FPS)
    times = CLICK_PHASE_S + CLICK_PERIOD_S * np.arange(int(t1 / CLICK_PERIOD_S) + 1)
    return times[(times > t0 + 0.02) & (times < t1 - 0.02)]


def write_part(path: Path, fmt: str, first_frame: int, frames: int, frame_image) -> Path:
    """A part of the content clock: frames ``first_frame ..`` (drawn by ``frame_image``) and
    their clicks, H.264 + mono AAC."""
    with av.open(str(path), "w", format=fmt) as out:
        vs = out.add_stream("libx264", rate=FPS, options={"preset": "ultrafast", "crf": "18", "threads": "1"})
        vs.width, vs.height, vs.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        as_ = out.add_stream("aac", rate=SOURCE_RATE, layout="mono")
        t = first_frame / float(FPS) + np.arange(round(frames / FPS * SOURCE_RATE)) / SOURCE_RATE
        mono = np.zeros_like(t)
        for c in click_times(first_frame, frames):
            mono += 0.8 * np.exp(-0.5 * ((t - c) / 0.001) ** 2) * np.sin(2 * np.pi * 2000.0 * (t - c))
        mono = mono.astype(np.float32)[None]
        for n in range(frames):  # one video frame, then its 1024 samples: interleaved as real files are
            frame = av.VideoFrame.from_ndarray(frame_image(first_frame + n, *SIZE), format="rgb24")
            frame.pts, frame.time_base = n, 1 / FPS
            out.mux(vs.encode(frame))
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(mono[:, n * 1024 : (n + 1) * 1024]), format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts, chunk.time_base = SOURCE_RATE, n * 1024, fractions.Fraction(1, SOURCE_RATE)
            out.mux(as_.encode(chunk))
        out.mux(vs.encode())
        out.mux(as_.encode())
    return path


def remux(src: Path, dst: Path, *, drop_audio=lambda t: False, video_jump: tuple[float, float] = (0.0, 0.0)) -> Path:
    """Remux ``src`` into ``dst`` without the audio packets whose time ``drop_audio(t)`` is
    true, and with video packets from ``video_jump[0]`` seconds on moved ``video_jump[1]`` later."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mpegts" if dst.suffix == ".ts" else "mp4") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is None:
                continue
            t = float(packet.pts * packet.time_base)
            if packet.stream.type == "audio" and drop_audio(t):
                continue
            if packet.stream.type == "video" and t >= video_jump[0]:
                ticks = round(video_jump[1] / packet.time_base)
                packet.pts, packet.dts = packet.pts + ticks, packet.dts + ticks
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
    return dst


def concat(parts: list[Path], dst: Path) -> Path:
    """``ffmpeg -f concat -c copy`` of ``parts`` (the way users join episodes)."""
    listing = dst.with_suffix(".txt")
    listing.write_text("".join(f"file '{p}'\n" for p in parts))
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(dst)], check=True)
    listing.unlink()
    return dst


# title -> (content clicks the title holds)
ALL_CLICKS = click_times(0, 3 * PART_FRAMES)
EXPECTED_CLICKS = {
    "concat_mp4": ALL_CLICKS,
    "concat_ts": ALL_CLICKS,
    "cat_ts": ALL_CLICKS,
    "audio_gap": ALL_CLICKS[(ALL_CLICKS < GAP[0] - 0.01) | (ALL_CLICKS > GAP[1] + 0.03)],
    "late_audio": ALL_CLICKS[ALL_CLICKS > LATE_START_S + 0.03],
    "video_jump": ALL_CLICKS,
}


@pytest.fixture(scope="module")
def sources(tmp_path_factory, timecode) -> Path:
    root = tmp_path_factory.mktemp("spliced")
    work = tmp_path_factory.mktemp("parts")
    src = root / "src"
    src.mkdir()
    for ext, fmt in (("mp4", "mp4"), ("ts", "mpegts")):
        parts = [write_part(work / f"part{i}.{ext}", fmt, i * PART_FRAMES, PART_FRAMES, timecode.frame_image) for i in range(3)]
        concat(parts, src / f"concat_{ext}.{ext}")
    (src / "cat_ts.ts").write_bytes(b"".join((work / f"part{i}.ts").read_bytes() for i in range(3)))
    whole = write_part(work / "whole.mp4", "mp4", 0, 3 * PART_FRAMES, timecode.frame_image)
    remux(whole, src / "audio_gap.mp4", drop_audio=lambda t: GAP[0] <= t < GAP[1])
    remux(whole, src / "late_audio.mp4", drop_audio=lambda t: t < LATE_START_S)
    remux(whole, src / "video_jump.ts", video_jump=VIDEO_JUMP)
    return root


@pytest.fixture(scope="module")
def store(sources) -> Path:
    catalog, out = sources / "catalog", sources / "store"
    ingest(str(sources / "src"), str(catalog), snippet_seconds=SPEC.snippet_seconds, heldout_fraction=0.0, workers=1, progress=False)
    preprocess(str(catalog), str(out), SPEC, workers=1, progress=False)
    return out


def clicks_in(audio: np.ndarray, rate: int) -> np.ndarray:
    """Times (s from the first sample) of the click peaks in ``audio``."""
    env = np.abs(hilbert(audio.astype(np.float64)))
    above = np.flatnonzero(env > 0.3)
    if not above.size:
        return np.zeros(0)
    groups = np.split(above, np.flatnonzero(np.diff(above) > 0.05 * rate) + 1)
    return np.array([(g[0] + np.argmax(env[g[0] : g[-1] + 1])) / rate for g in groups])


def picture_shift(video: Path, read_counter) -> np.ndarray:
    """For every store frame ``j``, title time minus content time of what it shows (seconds)."""
    with av.open(str(video)) as c:
        counters = np.array([read_counter(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)])
    return (np.arange(counters.size) - counters) / float(FPS)


def av_offsets(title_dir: Path, expected: np.ndarray, read_counter) -> tuple[np.ndarray, np.ndarray]:
    """(content time, audio-video offset in seconds) of every click found in a store title."""
    audio = np.load(title_dir / "audio.npy").astype(np.float32)
    shift = picture_shift(title_dir / "video.mp4", read_counter)
    found = clicks_in(audio, SPEC.audio_rate)
    frame = np.minimum((found * float(FPS)).astype(int), shift.size - 1)
    content = found - shift[frame]  # where the picture says this moment of content is
    nearest = expected[np.abs(content[:, None] - expected[None, :]).argmin(axis=1)]
    return nearest, content - nearest


@needs_ffmpeg
@pytest.mark.parametrize("title", sorted(EXPECTED_CLICKS))
def test_store_audio_is_in_sync_along_the_whole_title(store, timecode, title):
    """Every click of the title is in the store, within one AAC frame of its picture."""
    nearest, offsets = av_offsets(store / "titles" / title, EXPECTED_CLICKS[title], timecode.read_counter)
    worst = float(np.abs(offsets).max())
    where = float(nearest[np.abs(offsets).argmax()])
    assert worst <= AAC_FRAME_S, f"{title}: audio {worst * 1000:.1f} ms off the picture at content {where:.2f} s"
    assert sorted(nearest.tolist()) == EXPECTED_CLICKS[title].tolist()  # every click once, none lost or doubled
    assert worst < 0.5 / SPEC.audio_rate + 1e-4  # in fact sample-exact


@needs_ffmpeg
def test_meta_counts_gaps_overlaps_and_clock_jumps(store):
    meta = {t: json.loads((store / "titles" / t / "meta.json").read_text()) for t in EXPECTED_CLICKS}
    rate = SPEC.audio_rate
    counts = {t: (m["audio_gap_samples"], m["audio_overlap_samples"], m["clock_jumps"]) for t, m in meta.items()}
    frame = round(AAC_FRAME_S * rate)  # an AAC frame in store samples
    # concat: each of the two joins overlaps by one AAC frame (part 1's padding frame vs part 2's priming)
    assert counts["concat_mp4"] == (0, 2 * frame, 0)
    assert counts["concat_ts"][1] == 0 and counts["concat_ts"][2] == 0
    assert counts["cat_ts"][2] == 2
    assert counts["audio_gap"] == (round(14 * AAC_FRAME_S * rate), 0, 0)
    assert counts["late_audio"][0] == round(33 * AAC_FRAME_S * rate) and counts["late_audio"][1:] == (0, 0)
    assert counts["video_jump"] == (0, 0, 1)
    assert meta["cat_ts"]["source"]["max_timestamp_jump_s"] > PART_FRAMES / float(FPS)  # the catalog's figure, kept


def meta_snippets(store: Path, title: str) -> int:
    return json.loads((store / "titles" / title / "meta.json").read_text())["num_snippets"]


@needs_ffmpeg
def test_catalog_reports_the_largest_timestamp_jump(sources, store):
    jumps = {e["title_id"]: e["max_timestamp_jump_s"] for e in load_catalog(str(sources / "catalog"))}
    assert jumps["cat_ts"] == pytest.approx(PART_FRAMES / float(FPS) + AAC_FRAME_S, abs=1e-3)  # the clock restarts
    assert jumps["concat_mp4"] == pytest.approx(AAC_FRAME_S, abs=1e-4)  # one AAC frame of overlap per join
    assert jumps["audio_gap"] == pytest.approx(14 * AAC_FRAME_S, abs=1e-4)  # 14 packets missing
    assert jumps["late_audio"] == 0.0  # a late start is no jump
    assert jumps["video_jump"] == pytest.approx(VIDEO_JUMP[1], abs=1e-3)
    assert meta_snippets(store, "video_jump") == meta_snippets(store, "cat_ts") == 3 * PART_FRAMES // SPEC.snippet_frames


def same_clicks(got: np.ndarray, want: np.ndarray, rate: int) -> bool:
    """Whether two windows hold the same clicks, each within a sample of the other."""
    return got.shape == want.shape and bool(np.all(np.abs(got - want) <= 1.0 / rate))


# (title time, seconds) windows around the joins and the gap, where placement matters
WINDOWS = {"late_audio": [(0.4, 0.8)]}


@needs_ffmpeg
@pytest.mark.parametrize("title", ["concat_mp4", "concat_ts", "audio_gap", "late_audio"])
def test_decoders_and_downstream_clips_agree_with_the_store(sources, store, title):
    """On-the-fly reads of the source put every click where the store has it (to the sample)."""
    entry = {e["title_id"]: e for e in load_catalog(str(sources / "catalog"))}[title]
    stored = np.load(store / "titles" / title / "audio.npy").astype(np.float32)
    rate = SPEC.audio_rate
    names = ["pyav"] + (["torchcodec"] if torchcodec_available() else [])
    for start, seconds in WINDOWS.get(title, [(2.9, 0.8), (6.1, 0.8)]):
        want = clicks_in(stored[round(start * rate) : round((start + seconds) * rate)], rate)
        assert want.size >= 1
        for name in names:
            got = DECODERS.get(name)().read_audio(entry["path"], entry["start_s"] + start, seconds, rate).numpy()
            assert same_clicks(clicks_in(got, rate), want, rate), (name, start)
    clips = DownstreamClips([(entry["path"], 0)], modality="audio", train=False, decoder="pyav", transform=nn.Identity(),
                            clip_seconds=0.8, sample_rate=rate, num_clips=4)  # fmt: skip
    views = clips[0]["input"]
    starts = clips.starts(entry["path"])
    for start, view in zip(starts, views, strict=True):
        offset = start - entry["start_s"]
        want = clicks_in(stored[round(offset * rate) : round((offset + 0.8) * rate)], rate)
        assert torch.is_tensor(view) and same_clicks(clicks_in(view.numpy(), rate), want, rate), start


def test_timeline_gives_both_streams_one_shift_at_a_clock_restart():
    """Two parts whose clocks start at 0: video reaches the jump first, audio takes its shift."""
    tl, frame = Timeline(), 1 / float(FPS)
    part = [(i * frame, i * frame + AAC_FRAME_S) for i in range(PART_FRAMES)]  # (video, audio) times
    placed = [(tl.place("v", v, frame), tl.place("a", a, AAC_FRAME_S)) for v, a in part + part]
    end = PART_FRAMES * frame
    assert placed[PART_FRAMES] == pytest.approx((end, end + AAC_FRAME_S))  # part 2 continues part 1, in sync
    assert placed[-1] == pytest.approx((2 * end - frame, 2 * end - frame + AAC_FRAME_S))
    assert tl.clock_jumps == 1 and tl.largest_step_s == pytest.approx(end, abs=1e-9)


def test_timeline_keeps_overlaps_and_gaps_below_the_limits_for_the_reader():
    tl = Timeline()
    assert [tl.place("a", t, 0.1) for t in (0.0, 0.05, 0.45, 0.45 + MAX_GAP_S)] == pytest.approx([0.0, 0.05, 0.45, 0.45 + MAX_GAP_S])
    assert tl.place("a", 0.55 + MAX_GAP_S + MAX_GAP_S + 0.1, 0.1) == pytest.approx(0.55 + MAX_GAP_S)  # beyond: a jump
    assert tl.place("a", 0.65 + MAX_GAP_S - MAX_BACKSTEP_S - 0.2, 0.1) == pytest.approx(0.65 + MAX_GAP_S)  # back: a jump
    assert tl.place("a", None, 0.1) == pytest.approx(0.75 + MAX_GAP_S)  # no timestamp: right after the previous
    assert tl.clock_jumps == 2


def test_a_long_dropout_in_one_stream_is_a_gap_when_the_other_stream_is_there():
    """Audio missing for 15 s while the video runs on: a gap (silence), not a clock jump; the
    same step with the video still behind is a jump."""
    tl = Timeline()
    for i in range(20 * 25):
        tl.place("v", i / 25, 1 / 25)
        if i / 25 < 2.0 or i / 25 >= 17.0:
            assert tl.place("a", i / 25, 1 / 25) == pytest.approx(i / 25)
    assert tl.clock_jumps == 0
    tl.place("v", 40.0, 1 / 25)  # the video clock jumps 20 s ahead of both streams
    assert tl.clock_jumps == 1 and tl.place("v", 40.04, 1 / 25) == pytest.approx(20.04)


def tone_frames(times: list[float], rate: int, samples: int = 1024) -> list[av.AudioFrame]:
    """Stereo frames of a 440 Hz tone, ``samples`` long, carrying ``times`` as their timestamps."""
    frames = []
    for t in times:
        x = np.sin(2 * np.pi * 440.0 * (t + np.arange(samples) / rate)).astype(np.float32)
        f = av.AudioFrame.from_ndarray(np.stack([x, x]), format="fltp", layout="stereo")
        f.sample_rate, f.pts, f.time_base = rate, round(t * rate), fractions.Fraction(1, rate)
        frames.append(f)
    return frames


def place(frames: list[av.AudioFrame], out_seconds: float, rate: int) -> tuple[AudioPlacer, MonoResampler]:
    out = np.zeros(round(out_seconds * rate), np.float32)
    resampler, placer = MonoResampler(rate), AudioPlacer(out, 0.0, rate)
    for f in frames:
        placer.add(resampler.feed(f, float(f.pts * f.time_base)))
    placer.add(resampler.flush())
    return placer, resampler


@pytest.mark.parametrize("rate", [48000, 16000])
def test_jittered_timestamps_make_one_run_without_holes(rate):
    """Timestamps off by up to 0.2 frame (rounding) neither open gaps nor overlap: one run."""
    jitter = np.random.default_rng(0).uniform(-0.2, 0.2, 40) * AAC_FRAME_S
    jitter[0] = 0.0  # the first frame at the window's start (a later one would leave a gap before it)
    placer, resampler = place(tone_frames(list(np.arange(40) * AAC_FRAME_S + jitter), SOURCE_RATE), 40 * AAC_FRAME_S, rate)
    assert resampler.runs == 1 and (placer.gap_samples, placer.overlap_samples) == (0, 0)
    assert placer.written == round(40 * AAC_FRAME_S * rate)


def test_a_frame_off_its_sample_count_starts_a_new_run_at_its_time():
    """Frames 5 and 6 missing, then a frame overlapping frame 9 by 1023 samples (a concat join)."""
    joined = 10 * AAC_FRAME_S - 1023 / SOURCE_RATE
    times = [i * AAC_FRAME_S for i in (0, 1, 2, 3, 4, 7, 8, 9)] + [joined + k * AAC_FRAME_S for k in range(3)]
    placer, resampler = place(tone_frames(times, SOURCE_RATE), 12 * AAC_FRAME_S, SOURCE_RATE)
    assert resampler.runs == 3 and placer.gap_samples == 2 * 1024 and placer.overlap_samples == 1023
    tone = np.sin(2 * np.pi * 440.0 * np.arange(placer.out.size) / SOURCE_RATE).astype(np.float32)
    silent = slice(5 * 1024, 7 * 1024)
    assert not placer.out[silent].any()
    placer.out[silent] = tone[silent]
    assert np.abs(placer.out - tone).max() < 1e-5  # every sample where its timestamp says
