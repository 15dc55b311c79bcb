"""Snippet store: exact alignment, the store format, reads, crash safety, resume, shards, tools."""
from __future__ import annotations

import filecmp
import fractions
import json
import os
import pickle
import shutil
import subprocess

import av
import numpy as np
import pytest
import torch
from scipy.signal import hilbert

from avplug.data import store_writer
from avplug.data.catalog import load_catalog
from avplug.data.decoders import pyav_decoder
from avplug.data.decoders.media import seek_timestamp
from avplug.data.decoders.pyav_decoder import PyAVDecoder
from avplug.data.decoders.torchcodec_decoder import torchcodec_available
from avplug.data.errors import StoreError
from avplug.data.store import SnippetStore, StoreSpec, title_dir_name
from avplug.data.store_writer import (
    build_index,
    preprocess,
    scene_snippets,
    shard_titles,
    store_size,
    verify_store_video,
)

SOURCE_FPS = 25  # conftest.make_media's default


@pytest.fixture(scope="module")
def store(demo_store):
    return SnippetStore(demo_store[0])


def test_local_run_writes_every_title(demo_store, demo_catalog):
    out, summary = demo_store
    assert summary.done == 4 and summary.skipped == 0 and summary.failed == []
    index = json.loads((out / "index.json").read_text())
    assert [t["title_id"] for t in index["titles"]] == ["mono", "sc", "sur", "tc"]
    assert (out / "errors.jsonl").read_text() == ""
    assert not os.listdir(out / ".tmp")


def test_reader_api(store):
    assert (store.snippet_frames, store.fps, store.short_side, store.audio_rate) == (8, 5.0, 64, 16000)
    assert store.samples_per_snippet == 25600 and store.snippet_seconds == pytest.approx(1.6)
    titles = {t.title_id: t for t in store.titles}
    assert {k: t.num_snippets for k, t in titles.items()} == {"tc": 5, "sc": 5, "sur": 2, "mono": 2}
    assert (titles["tc"].show_id, titles["tc"].genre) == ("showA", "Drama")
    assert "tc" in store and "nope" not in store and len(store) == 4


def test_video_and_audio_of_snippet_m_come_from_its_time_span(store, timecode):
    """Snippet m covers [m L, (m + 1) L): frame i is the source frame displayed at m L + i / FPS
    and audio sample j is the source at m L + j / AUDIO_RATE (bursts land on the exact sample)."""
    L, F, fps, rate = store.snippet_seconds, store.snippet_frames, store.fps, store.audio_rate
    m_all = list(range(5))
    video = store.read_video("tc", m_all).numpy()
    audio = store.read_audio("tc", m_all).numpy()
    assert video.shape == (5, F, 64, 106, 3) and audio.shape == (5, store.samples_per_snippet)
    bursts = timecode.burst_times(8.0)
    for m in m_all:
        expected = [round((m * L + i / fps) * SOURCE_FPS) for i in range(F)]
        assert [timecode.read_counter(f) for f in video[m]] == expected
        env = np.abs(hilbert(audio[m]))
        inside = [c for c in bursts if m * L + 0.02 < c < (m + 1) * L - 0.02]
        assert inside
        for c in inside:
            pos = (c - m * L) * rate
            lo = int(pos - 0.02 * rate)
            assert abs(lo + np.argmax(env[lo : lo + int(0.04 * rate)]) - pos) <= 0.5


def test_snippets_come_back_in_the_order_asked_from_one_file_open(store, timecode):
    calls = []

    class Counting(PyAVDecoder):
        def read_video_clips(self, path, starts_s, num_frames, fps):
            calls.append((path, list(starts_s)))
            return super().read_video_clips(path, starts_s, num_frames, fps)

    video = store.read_video("tc", [3, 0, 3], decoder=Counting())
    assert [timecode.read_counter(clip[0]) for clip in video.numpy()] == [120, 0, 120]
    assert len(calls) == 1 and calls[0][1] == pytest.approx([4.8, 0.0, 4.8])
    audio = store.read_audio("tc", [3, 0])
    assert torch.equal(audio[0], store.read_audio("tc", [3])[0]) and torch.equal(audio[1], store.read_audio("tc", [0])[0])


def test_reading_a_snippet_decodes_its_own_frames_only(store, monkeypatch):
    """Each snippet starts on a keyframe: reading it decodes exactly its frames, neither the GOP
    before (a seek that rounds one tick early) nor the next snippet's keyframe (a look-ahead)."""
    decoded = []
    pull = pyav_decoder._VideoCursor._pull

    def counting_pull(self):
        d = pull(self)
        if d is not None:
            decoded.append(d.time)
        return d

    monkeypatch.setattr(pyav_decoder._VideoCursor, "_pull", counting_pull)
    L, F = store.snippet_seconds, store.snippet_frames
    for m in range(5):
        decoded.clear()
        store.read_video("tc", [m], decoder="pyav")
        assert decoded == pytest.approx([m * L + i / store.fps for i in range(F)]), m


def test_seek_timestamps_do_not_round_a_tick_early():
    class Stream:
        time_base = fractions.Fraction(1, 10240)

    frame = 2048  # ticks per frame at 5 fps; snippet m's keyframe is at m * 32768
    for m in range(10):
        assert m * 32768 <= seek_timestamp(m * 16 / 5, Stream) < m * 32768 + frame, m


def test_a_decoder_with_only_the_registry_contract_works(store, timecode):
    class Plain:
        def __init__(self):
            self.inner = PyAVDecoder()

        def read_video(self, path, start_s, num_frames, fps):
            return self.inner.read_video(path, start_s, num_frames, fps)

    video = store.read_video("tc", [1, 2], decoder=Plain())
    assert [timecode.read_counter(c[0]) for c in video.numpy()] == [40, 80]


@pytest.mark.skipif(not torchcodec_available(), reason="torchcodec or its FFmpeg libraries are missing")
def test_both_decoders_read_the_same_store_frames(store):
    a = store.read_video("sur", [1, 0], decoder="pyav").int()
    b = store.read_video("sur", [1, 0], decoder="torchcodec").int()
    assert a.shape == b.shape == (2, 8, 86, 64, 3)
    assert (a - b).abs().float().mean() < 1.0 and (a - b).abs().max() <= 8


def test_store_files(demo_store, store):
    root = demo_store[0]
    for t in store.titles:
        meta = json.loads((root / "titles" / title_dir_name(t.title_id) / "meta.json").read_text())
        frames = t.num_snippets * store.snippet_frames
        verify_store_video(store.video_path(t.title_id), frames, store.snippet_frames)  # a keyframe per snippet
        with av.open(store.video_path(t.title_id)) as c:
            vs = c.streams.video[0]
            assert vs.codec_context.name == "h264" and vs.average_rate == 5
            assert min(vs.codec_context.width, vs.codec_context.height) == 64
            assert vs.codec_context.width % 2 == 0 and vs.codec_context.height % 2 == 0
            assert [round(float(f.time) * 5) for f in c.decode(vs)] == list(range(frames))
        audio = np.load(store.audio_path(t.title_id), mmap_mode="r")
        assert audio.dtype == np.float16 and audio.shape == (t.num_snippets * store.samples_per_snippet,)
        assert meta["num_snippets"] == t.num_snippets and len(meta["video"]["keyframe_pos"]) == t.num_snippets
    assert (json.loads((root / "titles" / "sur" / "meta.json").read_text())["width"], store.read_video("sur", [0]).shape[2]) == (64, 86)


def test_scene_starts_are_snippet_indices_of_the_cuts(store):
    # cuts at 2.0 s and 6.4 s = store frames 10 and 32: snippet 1 holds 6 of 8 new-scene frames, 32 starts snippet 4
    assert store.title("sc").scene_starts == (0, 1, 4)
    assert store.title("tc").scenes()[0][0] == 0


def test_scene_snippets_assigns_a_cut_to_the_snippet_holding_most_of_the_new_scene():
    assert scene_snippets([8, 12, 13, 22, 80], 8, 5) == (0, 1, 2, 3)
    assert scene_snippets([], 8, 3) == (0,)


def test_store_size_keeps_aspect_with_even_sides():
    assert store_size(1920, 1080, 190) == (338, 190)
    assert store_size(1080, 1920, 190) == (190, 338)
    assert store_size(720, 480, 64, sample_aspect_ratio=32 / 27) == (114, 64)  # anamorphic 16:9 DVD
    assert store_size(160, 96, 65) == (108, 66)


def test_title_dir_names_are_safe_and_distinct():
    assert title_dir_name("tt0111161") == "tt0111161"
    odd = [title_dir_name(t) for t in ("a/b", "a:b", "../x", ".hidden", "a b")]
    assert len(set(odd)) == 5 and all("/" not in n and not n.startswith(".") for n in odd)


def test_missing_title_or_snippet_names_the_store_and_title(store, demo_store):
    with pytest.raises(StoreError, match=rf"{demo_store[0]}.*no title 'nope'"):
        store.read_video("nope", [0])
    with pytest.raises(StoreError, match=r"title 'sur' has snippets 0..1; asked for \[2\]"):
        store.read_audio("sur", [0, 2])
    with pytest.raises(StoreError, match="sur"):
        store.read_video("sur", [-1])
    assert store.read_video("sur", []).shape == (0, 8, 86, 64, 3)
    with pytest.raises(StoreError, match="no index.json"):
        SnippetStore(demo_store[0] / "titles")


def test_store_pickles_for_loader_workers(store):
    clone = pickle.loads(pickle.dumps(store))
    assert torch.equal(clone.read_audio("mono", [1]), store.read_audio("mono", [1]))
    assert clone.titles == store.titles


def copy_catalog(demo_catalog, tmp_path):
    cat = tmp_path / "catalog"
    shutil.copytree(demo_catalog[0], cat)
    return cat


def test_interrupted_title_never_reads_as_whole_and_a_rerun_finishes(demo_catalog, demo_store, demo_cfg, tmp_path, monkeypatch):
    cat, out = copy_catalog(demo_catalog, tmp_path), tmp_path / "store"
    spec = StoreSpec.from_cfg(demo_cfg)

    class Killed(BaseException):  # like SIGKILL: no except-clause of the writer runs
        pass

    real = store_writer.detect_scene_cuts

    def crash_on_sc(video_path, min_frames):
        if "/sc@" in video_path:  # after sc's video and audio are written, before it is renamed
            raise Killed()
        return real(video_path, min_frames)

    monkeypatch.setattr(store_writer, "detect_scene_cuts", crash_on_sc)
    with pytest.raises(Killed):
        preprocess(str(cat), str(out), spec, workers=1, progress=False)
    leftovers = os.listdir(out / ".tmp")
    assert len(leftovers) == 1 and leftovers[0].startswith("sc@")
    assert (out / ".tmp" / leftovers[0] / "video.mp4").exists()  # half a title on disk ...
    assert not (out / "titles" / "sc").exists()
    index = build_index(str(out), str(cat))  # ... that no index or reader sees
    assert [t["title_id"] for t in index["titles"]] == ["mono"]
    assert "sc" not in SnippetStore(out)

    monkeypatch.setattr(store_writer, "detect_scene_cuts", real)
    summary = preprocess(str(cat), str(out), spec, workers=1, progress=False)
    assert (summary.done, summary.skipped) == (3, 1)
    assert os.listdir(out / ".tmp") == []
    assert filecmp.cmp(out / "index.json", demo_store[0] / "index.json", shallow=False)
    assert summary.source_seconds_per_second > 0

    again = preprocess(str(cat), str(out), spec, workers=1, progress=False)
    assert (again.done, again.skipped) == (0, 4)


def test_a_broken_title_is_reported_not_fatal(demo_catalog, demo_cfg, tmp_path):
    cat, out = copy_catalog(demo_catalog, tmp_path), tmp_path / "store"
    broken = tmp_path / "broken.mp4"
    broken.write_text("garbage")
    entries = load_catalog(str(cat))
    for e in entries:
        if e["title_id"] == "sur":
            e["path"] = str(broken)
    (cat / "catalog.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    summary = preprocess(str(cat), str(out), StoreSpec.from_cfg(demo_cfg), workers=1, progress=False)
    assert summary.done == 3 and [f["title_id"] for f in summary.failed] == ["sur"]
    (error,) = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert error["title_id"] == "sur" and str(broken) == error["path"] and "not a media file" in error["reason"]
    assert "sur" not in SnippetStore(out) and os.listdir(out / ".tmp") == []


def test_shards_then_merge_equal_a_local_run(demo_catalog, demo_store, demo_cfg, tmp_path):
    cat, out = copy_catalog(demo_catalog, tmp_path), tmp_path / "store"
    spec = StoreSpec.from_cfg(demo_cfg)
    entries = load_catalog(str(cat))
    parts = [shard_titles(entries, i, 2) for i in range(2)]
    assert sorted(e["title_id"] for p in parts for e in p) == sorted(e["title_id"] for e in entries)
    assert {e["title_id"] for e in parts[0]}.isdisjoint(e["title_id"] for e in parts[1])
    for i in range(2):
        s = preprocess(str(cat), str(out), spec, workers=1, shard=i, num_shards=2, progress=False)
        assert s.index is None and s.done == len(parts[i])
    assert not (out / "index.json").exists()
    build_index(str(out), str(cat))
    local = demo_store[0]
    assert filecmp.cmp(out / "index.json", local / "index.json", shallow=False)
    for t in SnippetStore(local).titles:
        for name in ("video.mp4", "audio.npy"):
            assert filecmp.cmp(out / "titles" / t.title_id / name, local / "titles" / t.title_id / name, shallow=False), (t, name)


def test_a_store_refuses_another_spec(demo_catalog, demo_store, demo_cfg):
    spec = StoreSpec(demo_cfg.DATA.SNIPPET_FRAMES, demo_cfg.DATA.FPS, 96, demo_cfg.DATA.AUDIO_RATE)
    with pytest.raises(StoreError, match="another spec.*short_side"):
        preprocess(str(demo_catalog[0]), str(demo_store[0]), spec, workers=1, progress=False)
    longer = StoreSpec(16, 5.0, 64, 16000)
    with pytest.raises(StoreError, match="re-run tools/ingest.py"):
        preprocess(str(demo_catalog[0]), str(demo_store[0]), longer, workers=1, progress=False)


def test_tools_as_users_run_them(media_dir, meta_csv, demo_store, store_sizes, tmp_path, python_exe, repo_root):
    cat, out = tmp_path / "cat", tmp_path / "store"

    def run(tool, *args):
        proc = subprocess.run(
            [python_exe, str(repo_root / "tools" / tool), "--cfg", "demo.yaml", "--no-progress", *args],
            capture_output=True, text=True, cwd=repo_root, timeout=600, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    run("ingest.py", "--src", str(media_dir), "--meta", str(meta_csv), "--out", str(cat), "--workers", "2",
        "DATA.HELDOUT_FRACTION", "0.25")  # fmt: skip
    assert "4 titles written" in run("preprocess.py", "--catalog", str(cat), "--out", str(out), "--workers", "2", *store_sizes)
    assert filecmp.cmp(out / "index.json", demo_store[0] / "index.json", shallow=False)


def test_preprocess_tool_shards_merge_and_usage_errors(load_tool, demo_catalog, demo_store, store_sizes, tmp_path, capsys):
    main = load_tool("preprocess").main
    cat, out = str(demo_catalog[0]), str(tmp_path / "store")
    for shard in ("1", "0"):
        assert main(["--cfg", "demo.yaml", "--catalog", cat, "--out", out, "--workers", "1", "--no-progress",
                     "--shard", shard, "--num-shards", "2", *store_sizes]) == 0  # fmt: skip
    assert not (tmp_path / "store" / "index.json").exists()
    assert main(["--cfg", "demo.yaml", "--catalog", cat, "--out", out, "--merge", *store_sizes]) == 0
    assert "index of 4 titles" in capsys.readouterr().out
    assert filecmp.cmp(tmp_path / "store" / "index.json", demo_store[0] / "index.json", shallow=False)

    assert main(["--catalog", str(tmp_path / "none"), "--out", out, "--no-progress"]) == 2
    assert "no catalog.jsonl" in capsys.readouterr().err
    assert main(["--catalog", cat, "--out", out, "--num-shards", "2"]) == 2
    assert "--num-shards needs --shard" in capsys.readouterr().err
