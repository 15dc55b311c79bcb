"""The synthetic demo corpus: real decodable media, the sidecars, the stand-in layouts, broken files,
determinism and audio-visual synchronization of the event vocabulary."""
from __future__ import annotations

import csv
import importlib.util
import json
import re
import wave
from collections import Counter, defaultdict
from pathlib import Path

import av
import numpy as np
import pytest

from avplug.data.demo import generate_demo_corpus, plan_demo_corpus
from avplug.data.demo.events import EVENT_CLASS_NAMES, EVENT_CLASSES, event_class
from avplug.data.demo.plan import (
    DOWNSTREAM_CLASSES,
    DOWNSTREAM_RATE,
    DOWNSTREAM_SECONDS,
    ESC_FOLDS,
    ESC_RATE,
    ESC_SECONDS,
    ESC_SOURCES,
    ESC_TAKES,
    GENRES,
    HMDB_CLIPS_PER_GROUP,
    HMDB_GROUPS,
    HMDB_TEST_GROUPS,
    UCF_CLIPS_PER_GROUP,
    UCF_GROUPS,
)

SIZES = {"num_movies": 2, "num_shows": 1, "episodes_per_show": 2, "title_seconds": 8.0}


@pytest.fixture(scope="module")
def corpus(demo_corpus):
    """The suite's small corpus with everything (``SIZES``, broken files, stand-ins; tests/data/conftest.py)."""
    return demo_corpus


@pytest.fixture(scope="module")
def manifest(corpus):
    return json.loads(corpus.manifest_json.read_text())


def _good_titles(manifest):
    return [t for t in manifest["titles"] if t["broken"] is None]


def _decode_video(path: Path) -> tuple[np.ndarray, float]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(stream)])
        return frames, float(stream.average_rate)


def _decode_audio(path: Path) -> tuple[np.ndarray, int, str]:
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        chunks = [f.to_ndarray() for f in c.decode(stream)]
        return np.concatenate(chunks, axis=1), stream.rate, stream.layout.name


def _onsets_from_energy(x: np.ndarray, rate: int, ratio: float = 4.0, floor: float = 0.05) -> np.ndarray:
    """Times (s) where the 2.5 ms energy jumps ``ratio``-fold over the 25 ms before, counting only
    frames louder than ``floor`` times the loudest one (so faint background clicks are ignored)."""
    hop = int(0.0025 * rate)
    frames = x[: len(x) // hop * hop].reshape(-1, hop)
    energy = (frames.astype(np.float64) ** 2).mean(axis=1) + 1e-12
    history = 10
    hits = []
    for i in range(history, len(energy)):
        loud = energy[i] > floor * energy.max() and energy[i] > ratio * energy[i - history : i - 1].mean()
        if loud and (not hits or i - hits[-1] > 16):  # one hit per sound (40 ms)
            hits.append(i)
    return np.array(hits) * hop / rate


def _rise(x: np.ndarray, rate: int, t: float) -> float:
    """Energy in the 10 ms from ``t`` over the energy from 25 ms to 3 ms before ``t``: large exactly
    when a sound starts at ``t`` (a sound 5 ms late or early gives about 1)."""
    def energy(a, b):
        return float(np.mean(x[round(a * rate) : round(b * rate)].astype(np.float64) ** 2)) + 1e-12

    return energy(t, t + 0.010) / energy(t - 0.025, t - 0.003)


# ---------------------------------------------------------------------------------------------
# The catalog.
# ---------------------------------------------------------------------------------------------
def test_meta_csv_lists_every_title_with_its_show_and_genre(corpus, manifest):
    with open(corpus.meta_csv, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["path", "title_id", "show_id", "genre"]
    rows = [dict(zip(rows[0], r)) for r in rows[1:]]
    assert {k: manifest["sizes"][k] for k in SIZES} == SIZES  # the conftest's corpus has these sizes
    assert len(rows) == 2 + 1 * 2 + 4  # movies, episodes, broken files
    assert len({r["title_id"] for r in rows}) == len(rows)
    for r in rows:
        assert (corpus.meta_csv.parent / r["path"]).is_file(), r["path"]
        assert r["genre"] in GENRES
        assert (r["show_id"] == "") == (not r["title_id"].startswith("show_"))
    episodes = [r for r in rows if r["show_id"]]
    assert {r["show_id"] for r in episodes} == {"show_00"}
    assert len({r["genre"] for r in episodes}) == 1  # a show keeps its genre
    assert sorted(corpus.titles) == sorted(corpus.meta_csv.parent / r["path"] for r in rows)


def test_titles_decode_with_the_planned_streams_and_durations(corpus, manifest):
    layouts = set()
    for t in _good_titles(manifest):
        path = corpus.root / t["path"]
        with av.open(str(path)) as c:
            assert [s.type for s in c.streams] == ["video", "audio"], t["title_id"]
            v, a = c.streams.video[0], c.streams.audio[0]
            assert (v.codec_context.name, a.codec_context.name) == ("h264", "aac")
            assert (v.width, v.height) == (t["width"], t["height"])
            assert (a.rate, a.channels) == (t["sample_rate"], t["channels"])
            layouts.add(a.layout.name)
        frames, fps = _decode_video(path)
        assert fps == t["fps"] and len(frames) == t["num_frames"] == round(8.0 * t["fps"])
        samples, rate, _ = _decode_audio(path)
        assert samples.shape[0] == t["channels"]
        assert abs(samples.shape[1] / rate - t["duration"]) < 0.03, t["title_id"]
        assert 0.01 < np.abs(samples).max() <= 1.0
    assert layouts == {"5.1", "stereo"}  # the first content is 5.1, so the downmix path is exercised
    assert {t["fps"] for t in manifest["titles"] if "fps" in t} <= {24, 25, 30}
    assert {t["sample_rate"] for t in manifest["titles"] if "sample_rate" in t} <= {44100, 48000}


def test_scenes_json_matches_the_plan_and_pyscenedetect_finds_every_cut(corpus, manifest):
    from scenedetect import ContentDetector, detect

    scenes = json.loads(corpus.scenes_json.read_text())["titles"]
    for t in _good_titles(manifest):
        s = scenes[t["title_id"]]
        assert s["scene_starts"][0] == 0.0 and s["scene_ends"][-1] == pytest.approx(t["duration"])
        assert s["scene_starts"][1:] == s["scene_ends"][:-1]
        assert all(b - a >= 1.5 - 1e-9 for a, b in zip(s["scene_starts"], s["scene_ends"]))
        assert s["scene_start_frames"] == [round(x * t["fps"]) for x in s["scene_starts"]]
        assert all(a != b for a, b in zip(s["locations"], s["locations"][1:]))  # every cut changes place
        detected = [start.frame_num for start, _ in detect(str(corpus.root / t["path"]), ContentDetector())] or [0]
        assert detected == s["scene_start_frames"], t["title_id"]


def test_events_come_from_the_vocabulary_and_stay_inside_their_scene(manifest):
    seen = Counter()
    for t in _good_titles(manifest):
        for scene in t["scenes"]:
            assert scene["events"], "every scene has at least one event"
            for ev in scene["events"]:
                seen[ev["class"]] += 1
                assert scene["start"] - 1e-9 <= ev["start"] and ev["start"] + ev["duration"] <= scene["end"] + 1e-9
                assert all(0 <= o < ev["duration"] for o in ev["onsets"]) and ev["onsets"] == sorted(ev["onsets"])
    assert set(seen) <= set(EVENT_CLASS_NAMES) and len(seen) >= 3


def test_content_artifacts_are_shared_by_episodes_and_differ_between_titles(corpus, manifest):
    contents = manifest["contents"]
    by_id = {t["title_id"]: t for t in _good_titles(manifest)}
    e1, e2 = by_id["show_00_e01"], by_id["show_00_e02"]
    assert e1["content"] == e2["content"] == "show_00"
    assert by_id["movie_00"]["content"] != by_id["movie_01"]["content"]
    hums = {cid: c["hum_hz"] for cid, c in contents.items()}
    assert len(set(hums.values())) == len(hums)
    # the mastering hum is really in every title's sound: a narrow peak at the title's frequency
    for t in by_id.values():
        x, rate, _ = _decode_audio(corpus.root / t["path"])
        spectrum = np.abs(np.fft.rfft(x.mean(axis=0)))
        freqs = np.fft.rfftfreq(x.shape[1], 1 / rate)
        hum = hums[t["content"]]
        at = spectrum[np.abs(freqs - hum) < 1.0].max()
        around = np.median(spectrum[(np.abs(freqs - hum) > 5) & (np.abs(freqs - hum) < 40)])
        assert at > 5 * around, (t["title_id"], hum)  # event sounds (engines, thuds) share the low band
    # the main character appears in every title (always in the first scene), and themes recur
    for t in by_id.values():
        assert t["scenes"][0]["character"] is not None and t["scenes"][0]["themes"]


# ---------------------------------------------------------------------------------------------
# Broken files.
# ---------------------------------------------------------------------------------------------
def test_broken_files_are_really_broken(corpus, manifest):
    broken = {b["reason"]: corpus.root / b["path"] for b in json.loads(corpus.broken_json.read_text())["broken"]}
    assert set(broken) == {"no_audio", "truncated", "not_media", "too_short"}
    listed = {str(p) for p in corpus.titles}
    assert all(str(p) in listed for p in broken.values())

    with av.open(str(broken["no_audio"])) as c:
        assert len(c.streams.video) == 1 and len(c.streams.audio) == 0
        assert sum(1 for _ in c.decode(video=0)) > 0

    with pytest.raises(av.FFmpegError), av.open(str(broken["truncated"])) as c:
        for _ in c.decode(video=0):
            pass
    assert broken["truncated"].stat().st_size > 1000  # half a file, not an empty one

    with pytest.raises(av.FFmpegError):
        av.open(str(broken["not_media"]))
    assert broken["not_media"].suffix in {".mp4", ".mkv", ".avi", ".mov"}

    short = next(t for t in manifest["titles"] if t["broken"] == "too_short")
    from avplug.config import load_config

    snippet = load_config("demo.yaml").DATA.SNIPPET_SECONDS
    assert short["duration"] < snippet
    frames, fps = _decode_video(broken["too_short"])
    samples, rate, _ = _decode_audio(broken["too_short"])
    assert len(frames) / fps == pytest.approx(1.5, abs=0.05) and samples.shape[1] / rate == pytest.approx(1.5, abs=0.05)


# ---------------------------------------------------------------------------------------------
# Downstream stand-ins, parsed by hand from their official layouts.
# ---------------------------------------------------------------------------------------------
MIN_TEST_CLIPS = 200  # per split or fold: enough for a linear probe's accuracy to be measured


def test_ucf101_layout_and_split_rule(corpus):
    root = corpus.ucf101_root
    lists = root / "ucfTrainTestlist"
    raw = (lists / "classInd.txt").read_bytes()
    assert raw.endswith(b"\r\n")
    class_ind = [line.split(" ") for line in raw.decode().splitlines()]
    assert [int(i) for i, _ in class_ind] == list(range(1, len(class_ind) + 1))
    names = [n for _, n in class_ind]
    assert names == [event_class(c).ucf101 for c in DOWNSTREAM_CLASSES["ucf101"]]
    assert all(re.fullmatch(r"[A-Z][a-z]+(?:[A-Z][a-z]+)*", n) for n in names)
    label = {n: i + 1 for i, n in enumerate(names)}
    on_disk = {p.relative_to(root / "UCF-101").as_posix() for p in (root / "UCF-101").rglob("*.avi")}
    pattern = re.compile(r"(?P<c>[A-Za-z]+)/v_(?P=c)_g(?P<g>\d\d)_c(?P<k>\d\d)\.avi")
    third = UCF_GROUPS // 3
    tested_by = {}
    for s in (1, 2, 3):
        tested = set(range((s - 1) * third + 1, s * third + 1))  # split s tests the s-th third of the groups
        train = [line.split(" ") for line in (lists / f"trainlist0{s}.txt").read_text().splitlines()]
        test = (lists / f"testlist0{s}.txt").read_text().splitlines()
        assert all(len(parts) == 2 for parts in train) and all(" " not in line for line in test)
        assert {p for p, _ in train} | set(test) == on_disk and not {p for p, _ in train} & set(test)
        for path, lab in train:
            m = pattern.fullmatch(path)
            assert m and int(lab) == label[m["c"]]
            assert int(m["g"]) not in tested
        assert {int(pattern.fullmatch(p)["g"]) for p in test} == tested  # whole groups, of every class
        assert Counter(p.split("/")[0] for p in test) == {n: third * UCF_CLIPS_PER_GROUP for n in names}
        assert len(test) >= MIN_TEST_CLIPS
        tested_by.update({p: s for p in test})
    assert set(tested_by) == on_disk  # the three test sets partition the clips
    per_class = Counter(p.split("/")[0] for p in on_disk)
    assert per_class == {n: UCF_GROUPS * UCF_CLIPS_PER_GROUP for n in names}
    assert {int(pattern.fullmatch(p)["g"]) for p in on_disk} == set(range(1, UCF_GROUPS + 1))
    with av.open(str(root / "UCF-101" / min(on_disk))) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert (v.width, v.height, a.rate, a.channels) == (160, 120, DOWNSTREAM_RATE, 2)
        assert sum(1 for _ in c.decode(v)) == round(DOWNSTREAM_SECONDS * 25)  # at 25 fps


def test_hmdb51_layout_and_split_marks(corpus):
    root = corpus.hmdb51_root
    names = sorted(p.name for p in (root / "videos").iterdir())
    assert names == sorted(event_class(c).hmdb51 for c in DOWNSTREAM_CLASSES["hmdb51"])
    assert all(re.fullmatch(r"[a-z]+(?:_[a-z]+)*", n) for n in names)
    tested = Counter()
    for name in names:
        videos = {p.name for p in (root / "videos" / name).glob("*.avi")}
        assert len(videos) == HMDB_GROUPS * HMDB_CLIPS_PER_GROUP and all(f"_{name}_" in v for v in videos)
        test_sets = []
        for s in (1, 2, 3):
            text = (root / "testTrainMulti_7030_splits" / f"{name}_test_split{s}.txt").read_text()
            marks = dict(line.split() for line in text.splitlines())
            assert set(marks) == videos
            counts = Counter(marks.values())
            assert counts == {"2": HMDB_TEST_GROUPS * HMDB_CLIPS_PER_GROUP, "0": 1, "1": len(videos) - counts["2"] - 1}
            assert 0.25 < counts["2"] / len(videos) < 0.35  # about 70/30
            tested[s] += counts["2"]
            source = defaultdict(set)  # the clips of one source video are never split up
            for video, mark in marks.items():
                source[video.split(f"_{name}_")[0]].add("test" if mark == "2" else "other")
            assert len(source) == HMDB_GROUPS and all(len(v) == 1 for v in source.values())
            test_sets.append({v for v, mark in marks.items() if mark == "2"})
        assert len({frozenset(t) for t in test_sets}) == 3  # each split draws its own test sources
    assert min(tested.values()) >= MIN_TEST_CLIPS
    any_clip = next((root / "videos" / names[0]).glob("*.avi"))
    with av.open(str(any_clip)) as c:
        assert c.streams.audio[0].channels == 1 and c.streams.video[0].codec_context.name == "mpeg4"


def test_esc50_layout_folds_and_wav_format(corpus):
    root = corpus.esc50_root
    with open(root / "meta" / "esc50.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
    rows = [dict(zip(rows[0], r)) for r in rows[1:]]
    assert {p.name for p in (root / "audio").glob("*.wav")} == {r["filename"] for r in rows}
    category_of = {}
    for r in rows:
        assert r["filename"] == f"{r['fold']}-{r['src_file']}-{r['take']}-{r['target']}.wav"
        assert category_of.setdefault(r["target"], r["category"]) == r["category"]
        assert r["esc10"] in ("True", "False")
    assert sorted(int(t) for t in category_of) == list(range(len(DOWNSTREAM_CLASSES["esc50"])))
    assert {int(r["fold"]) for r in rows} == set(range(1, ESC_FOLDS + 1))
    per_fold = Counter((r["fold"], r["target"]) for r in rows)
    assert set(per_fold.values()) == {ESC_SOURCES * ESC_TAKES}  # every class equally in every fold
    assert len(per_fold) == ESC_FOLDS * len(category_of)
    assert min(Counter(r["fold"] for r in rows).values()) >= MIN_TEST_CLIPS
    folds_of_source = defaultdict(set)  # the takes of a source recording stay in one fold
    for r in rows:
        folds_of_source[r["src_file"]].add(r["fold"])
    assert len(folds_of_source) == len(rows) // ESC_TAKES and all(len(f) == 1 for f in folds_of_source.values())
    for r in rows[:5]:
        with wave.open(str(root / "audio" / r["filename"])) as w:
            params = (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes())
            assert params == (1, 2, ESC_RATE, round(ESC_SECONDS * ESC_RATE))


def test_stand_in_sound_follows_the_picture_after_encoding(corpus, manifest):
    """End to end through the codecs: in a decoded UCF101 Drumming clip every drum hit starts at its
    planned time (the MP2 decoder delay is compensated) and is seen (the drum head brightens on the
    first frame at or after the hit)."""
    clip = next(c for c in manifest["downstream"]["ucf101"]["clips"] if c["class"] == "Drumming")
    path = corpus.root / clip["path"]
    audio, rate, _ = _decode_audio(path)
    mono = audio.mean(axis=0)
    onsets = np.array(clip["event"]["onsets"])
    assert min(_rise(mono, rate, t) for t in onsets) > 8
    assert max(_rise(mono, rate, t + 0.011) for t in onsets) < 3  # 11 ms late (uncompensated) is not it
    frames, fps = _decode_video(path)
    ev = clip["event"]
    cx, cy, r = int(ev["cx"]), int(ev["cy"]), int(ev["radius"] * 0.5)
    brightness = frames[:, cy - r // 2 : cy + r // 2, cx - r : cx + r].astype(float).mean(axis=(1, 2, 3))
    for onset in onsets:
        hit = int(np.ceil(onset * fps - 1e-9))
        if hit < len(frames):
            assert brightness[hit] > brightness[hit - 1] + 2, onset


def test_esc50_clip_sound_has_the_planned_onsets(corpus, manifest):
    for category in ("clapping", "door_wood_knock", "chirping_birds"):
        for clip in [c for c in manifest["downstream"]["esc50"]["clips"] if c["category"] == category]:
            with wave.open(str(corpus.root / clip["path"])) as w:
                x, rate = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2") / 32768.0, w.getframerate()
            planned = clip["offset"] + np.array(clip["event"]["onsets"])
            assert min(_rise(x, rate, t) for t in planned) > 8, clip["filename"]
            before = x[: int(clip["offset"] * rate)]
            if len(before):  # only the quiet background before the event starts
                assert np.abs(before).max() < 0.5 * np.abs(x).max()


# ---------------------------------------------------------------------------------------------
# Determinism.
# ---------------------------------------------------------------------------------------------
def test_same_seed_same_content_other_seed_different(tmp_path):
    tiny = {"num_movies": 1, "num_shows": 0, "title_seconds": 4.0, "downstream": False, "broken": False, "workers": 1, "progress": False}
    runs = [generate_demo_corpus(tmp_path / name, seed=seed, **tiny) for name, seed in (("a", 0), ("b", 0), ("c", 1))]
    manifests = [json.loads(r.manifest_json.read_text()) for r in runs]
    assert manifests[0] == manifests[1] and manifests[0]["titles"] != manifests[2]["titles"]
    decoded = [(_decode_video(r.titles[0])[0], _decode_audio(r.titles[0])[0]) for r in runs]
    assert np.array_equal(decoded[0][0], decoded[1][0]) and np.array_equal(decoded[0][1], decoded[1][1])
    assert decoded[0][0].shape != decoded[2][0].shape or not np.array_equal(decoded[0][0], decoded[2][0])


def test_plan_is_a_pure_function_of_the_arguments():
    a = plan_demo_corpus(seed=5, **SIZES)
    assert a == plan_demo_corpus(seed=5, **SIZES)
    b = plan_demo_corpus(seed=6, **SIZES)
    assert a["downstream"] != b["downstream"] and a["contents"] != b["contents"]
    assert json.loads(json.dumps(a)) == a  # plain JSON, as written to manifest.json


def test_refuses_to_overwrite_a_foreign_folder_and_rejects_bad_sizes(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="refusing"):
        generate_demo_corpus(tmp_path, num_movies=1, num_shows=0, title_seconds=4.0, downstream=False, progress=False)
    assert (tmp_path / "precious.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="at least one"):
        plan_demo_corpus(num_movies=0, num_shows=0)
    with pytest.raises(ValueError, match="title_seconds"):
        plan_demo_corpus(title_seconds=1.0)


# ---------------------------------------------------------------------------------------------
# The event vocabulary: picture and sound are causally synchronized (exact, before encoding).
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [c for c in EVENT_CLASSES if c.impulsive], ids=lambda c: c.name)
def test_every_sound_onset_is_a_planned_sync_point(cls):
    rate = 16000
    for seed in range(3):
        p = cls.plan(np.random.default_rng(seed), 4.0, 160, 120)
        mono, pan = cls.sound(p, rate)
        assert mono.shape == pan.shape == (4 * rate,) and np.abs(pan).max() <= 1.0
        heard = _onsets_from_energy(mono + 1e-4 * np.random.default_rng(0).standard_normal(len(mono)), rate)
        onsets = np.array(p["onsets"])
        assert len(onsets) >= 2 and len(heard) == len(onsets), (seed, heard, onsets)
        assert np.abs(heard - onsets).max() <= 0.006
        # loudness follows the motion: louder planned hits are louder sounds
        peaks = [np.abs(mono[int(o * rate) : int((o + 0.03) * rate)]).max() for o in onsets]
        assert np.corrcoef(peaks, p["gains"])[0, 1] > 0.8


def _render(cls, p, times, size=(160, 120)):
    frames = np.zeros((len(times), size[1], size[0], 3), np.float32)
    for i, t in enumerate(times):
        cls.draw(frames[i], float(t), p)
    return frames


def test_bouncing_ball_touches_the_floor_exactly_when_it_thuds():
    cls = event_class("bouncing_ball")
    p = cls.plan(np.random.default_rng(1), 3.0, 160, 120)
    for onset in p["onsets"]:
        times = onset + np.array([-0.06, -0.03, 0.0, 0.03, 0.06])
        times = times[(times >= 0) & (times < 3.0)]
        bottoms = []
        for img in _render(cls, p, times):
            ball = np.nonzero(np.abs(img - np.asarray(p["color"], np.float32)).sum(axis=2) < 0.05)[0]
            bottoms.append(ball.max())
        at = list(times).index(onset)
        assert bottoms[at] == max(bottoms) and bottoms[at] >= p["floor"] - 2


def test_clapping_hands_meet_exactly_at_each_clap():
    cls = event_class("clapping")
    p = cls.plan(np.random.default_rng(2), 3.0, 160, 120)
    row = int(p["cy"])

    def gap_pixels(t):
        img = _render(cls, p, [t])[0]
        covered = np.nonzero(img[row].sum(axis=1) > 0.3)[0]
        return int(np.sum(np.diff(covered) > 1))  # holes between the two hands on the middle row

    for a, b in zip(p["onsets"], p["onsets"][1:]):
        assert gap_pixels(a) == 0 and gap_pixels((a + b) / 2) == 1


def test_continuous_sounds_peak_at_their_sync_points():
    rate = 16000
    siren = event_class("siren")
    p = siren.plan(np.random.default_rng(3), 4.0, 160, 120)
    mono, pan = siren.sound(p, rate)

    def pitch(t):  # zero-crossing rate over 40 ms
        seg = mono[int(t * rate) : int((t + 0.04) * rate)]
        return np.sum(np.abs(np.diff(np.sign(seg)))) / 2 / 0.04

    for onset in p["onsets"]:
        if onset + p["period"] / 2 + 0.04 < 4.0 and onset > 0.03:
            assert pitch(onset - 0.02) > pitch(onset - 0.02 + p["period"] / 2) * 1.15
    assert pan[0] * pan[-1] < 0  # it crosses the screen, and the sound crosses the stereo field

    engine = event_class("engine")
    p = engine.plan(np.random.default_rng(4), 4.0, 160, 120)
    mono, _ = engine.sound(p, rate)
    for onset, nxt in zip(p["onsets"], p["onsets"][1:]):
        loud = np.sqrt(np.mean(mono[int((onset - 0.02) * rate) : int((onset + 0.02) * rate)] ** 2))
        mid = (onset + nxt) / 2
        quiet = np.sqrt(np.mean(mono[int((mid - 0.02) * rate) : int((mid + 0.02) * rate)] ** 2))
        assert loud > 1.5 * quiet
    # the red spoke points up at every onset
    for onset in p["onsets"][:3]:
        img = _render(engine, p, [onset])[0]
        red = np.nonzero((img[..., 0] > 0.8) & (img[..., 1] < 0.2) & (img[..., 2] < 0.2))
        assert red[0].mean() < p["cy"] - 0.3 * p["radius"] and abs(red[1].mean() - p["cx"]) < 2


def test_event_plans_are_json_and_deterministic():
    for cls in EVENT_CLASSES:
        a = cls.plan(np.random.default_rng(7), 2.5, 192, 108)
        assert a == cls.plan(np.random.default_rng(7), 2.5, 192, 108)
        assert json.loads(json.dumps(a)) == a and a["class"] == cls.name
        mono1, _ = cls.sound(a, 8000)
        mono2, _ = cls.sound(a, 8000)
        assert np.array_equal(mono1, mono2) and len(mono1) == round(2.5 * 8000)
    with pytest.raises(KeyError, match="known: bouncing_ball"):
        event_class("lightsaber")


# ---------------------------------------------------------------------------------------------
# The command-line entry point.
# ---------------------------------------------------------------------------------------------
def _tool_main(repo_root):
    spec = importlib.util.spec_from_file_location("avplug_tool_make_demo_corpus", repo_root / "tools" / "make_demo_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_make_demo_corpus_tool(repo_root, tmp_path, capsys):
    main = _tool_main(repo_root)
    out = tmp_path / "demo"
    argv = ["--out", str(out), "--seed", "3", "--movies", "1", "--shows", "1", "--episodes", "2",
            "--title-seconds", "4", "--no-downstream", "--workers", "1", "--no-progress"]
    assert main(argv) == 0
    assert "7 titles" in capsys.readouterr().out  # 1 movie, 2 episodes and the 4 broken files
    with open(out / "meta.csv") as f:
        ids = [row["title_id"] for row in csv.DictReader(f)]
    assert ids[:3] == ["movie_00", "show_00_e01", "show_00_e02"] and len(ids) == 3 + 4
    assert not (out / "ucf101").exists()
    assert json.loads((out / "manifest.json").read_text())["seed"] == 3
    # rerunning into the same folder replaces the previous corpus
    assert main(argv + ["--no-broken"]) == 0
    assert not (out / "broken.json").exists()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    assert main(["--out", str(tmp_path / "other"), "--no-progress"]) == 2
    assert main(["--out", str(tmp_path / "z"), "--movies", "0", "--shows", "0"]) == 2
    assert "at least one" in capsys.readouterr().err
