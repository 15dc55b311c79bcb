"""Planning the demo corpus: the manifest, a JSON description of every file, a pure function of the
sizes and the seed (numpy generators seeded from ``[seed, stream, index]``), so that rendering needs
no other randomness.

The plan decides the contents (a movie, or a TV show shared by its episodes: genre, look, palette of
locations, main character, theme melody, hum), each title's scenes and their events, the broken
titles, and the clips of the UCF101 / HMDB51 / ESC-50 stand-ins with their split membership.  What
the corpus looks and sounds like, and the stand-ins' split rules, are in ``docs/demo_corpus.md``.
"""
from __future__ import annotations

import colorsys
import itertools
import json

import numpy as np

from avplug.data.demo.events import EVENT_CLASS_NAMES, EVENT_CLASSES, event_class
from avplug.data.demo.pictures import location_frame

__all__ = [
    "BROKEN_REASONS",
    "DOWNSTREAM_CLASSES",
    "DOWNSTREAM_FPS",
    "DOWNSTREAM_RATE",
    "DOWNSTREAM_SECONDS",
    "DOWNSTREAM_SIZE",
    "ESC_FOLDS",
    "ESC_RATE",
    "ESC_SECONDS",
    "ESC_SOURCES",
    "ESC_TAKES",
    "GENRES",
    "HMDB_CLIPS_PER_GROUP",
    "HMDB_GROUPS",
    "HMDB_TEST_GROUPS",
    "UCF_CLIPS_PER_GROUP",
    "UCF_GROUPS",
    "plan_demo_corpus",
]

GENRES: tuple[str, ...] = ("Drama", "Comedy", "Action", "Horror", "Thriller", "Sci-Fi", "Romance")

# How genre shapes a title: scene length range (s), events per minute, and the colour grade.  Events last
# 1.5-5 s, so 18-60 a minute keep one or two sound sources on screen most of the time (about 3/4 of
# the 1.6-s demo snippets hold one), as in films, where what is heard is mostly what is shown.
_GENRE_STYLE = {
    "Drama": {"scene": (8.0, 20.0), "events_per_min": 24, "brightness": 0.9, "saturation": 0.85, "tint": (1.0, 1.0, 1.0)},
    "Comedy": {"scene": (5.0, 14.0), "events_per_min": 36, "brightness": 1.05, "saturation": 1.15, "tint": (1.03, 1.02, 0.95)},
    "Action": {"scene": (3.0, 8.0), "events_per_min": 60, "brightness": 0.95, "saturation": 1.0, "tint": (1.08, 1.0, 0.9)},
    "Horror": {"scene": (4.0, 14.0), "events_per_min": 24, "brightness": 0.7, "saturation": 0.6, "tint": (0.9, 1.08, 0.95)},
    "Thriller": {"scene": (4.0, 12.0), "events_per_min": 36, "brightness": 0.75, "saturation": 0.8, "tint": (0.95, 1.0, 1.08)},
    "Sci-Fi": {"scene": (5.0, 15.0), "events_per_min": 36, "brightness": 0.85, "saturation": 0.9, "tint": (0.88, 1.0, 1.15)},
    "Romance": {"scene": (6.0, 18.0), "events_per_min": 18, "brightness": 1.0, "saturation": 1.05, "tint": (1.12, 0.98, 0.92)},
}

# The event classes each stand-in uses (six each, as different taxonomies over one vocabulary).
DOWNSTREAM_CLASSES: dict[str, tuple[str, ...]] = {
    "ucf101": ("bouncing_ball", "drumming", "siren", "clapping", "engine", "footsteps"),
    "hmdb51": ("bouncing_ball", "clapping", "engine", "knocking", "chirping", "footsteps"),
    "esc50": ("drumming", "siren", "clapping", "engine", "knocking", "chirping"),
}
_ESC10 = ("siren", "engine")  # categories marked esc10=True

# Stand-in sizes: every split or fold tests at least 200 clips (6 classes each).
UCF_GROUPS = 15  # groups per class; split s tests the s-th third of them (official: 7 of 25 groups)
UCF_CLIPS_PER_GROUP = 7  # official: 4-7
HMDB_GROUPS = 30  # source videos per class
HMDB_CLIPS_PER_GROUP = 4
HMDB_TEST_GROUPS = 9  # source videos tested per class and split (30%, as the official 7030 splits)
ESC_FOLDS = 5
ESC_SOURCES = 12  # source recordings per class and fold
ESC_TAKES = 3  # takes (excerpts A, B, C) per source recording, all in the fold of their source
DOWNSTREAM_SECONDS = 2.0
DOWNSTREAM_FPS = 25
DOWNSTREAM_SIZE = (160, 120)
DOWNSTREAM_RATE = 16000
ESC_SECONDS = 3.0
ESC_RATE = 16000

BROKEN_REASONS: tuple[str, ...] = ("no_audio", "truncated", "not_media", "too_short")
_SHORT_SECONDS = 1.5
_BROKEN_SECONDS = 10.0  # length of the (otherwise valid) no-audio and truncated titles

_MANIFEST_VERSION = 1
# The manifest's "generator" field: the module that wrote version 1, kept so that manifests stay
# byte-identical to those written before the generator became the avplug.data.demo package.
_GENERATOR = "avplug.data.demo_corpus"


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *stream])


def _hsv(h: float, s: float, v: float) -> list[float]:
    return list(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0)))


def _plan_location(rng: np.random.Generator, hue: float, value: float, sat: float) -> dict:
    """A place: background look (gradient, texture, floor, pan) and ambient sound spectrum."""
    return {
        "top": _hsv(hue + rng.uniform(-0.04, 0.04), sat, value * rng.uniform(0.85, 1.1)),
        "bottom": _hsv(hue + rng.uniform(-0.08, 0.08), sat * rng.uniform(0.6, 1.2), value * rng.uniform(0.55, 0.85)),
        "angle": float(rng.uniform(0, 2 * np.pi)),
        "texture": str(rng.choice(["stripes", "checker", "blobs", "waves"])),
        "tex_freq": float(rng.uniform(1.5, 6.0)),
        "tex_contrast": float(rng.uniform(0.06, 0.2)),
        "tex_phase": float(rng.uniform(0, 2 * np.pi)),
        "blobs": [[float(rng.uniform(0, 1.6)), float(rng.uniform(0, 1)), float(rng.uniform(0.08, 0.3)),
                   float(rng.uniform(-0.3, 0.3))] for _ in range(4)],
        "floor": float(rng.uniform(0.62, 0.85)) if rng.uniform() < 0.6 else None,
        "floor_color": _hsv(hue + 0.5 * rng.uniform(-0.2, 0.2), sat * 0.5, value * rng.uniform(0.35, 0.6)),
        "pan_speed": float(rng.uniform(0.0, 5.0)),  # pixels per second
        "ambient": {
            "tilt": float(rng.uniform(0.0, 2.0)),  # 0 white .. 2 brown
            "peak_hz": float(np.exp(rng.uniform(np.log(120), np.log(3000)))),
            "peak_octaves": float(rng.uniform(0.3, 1.2)),
            "peak_gain": float(rng.uniform(0.0, 8.0)),
            "cutoff_hz": float(rng.uniform(2500, 9000)),
            "level": float(rng.uniform(0.015, 0.045)),  # RMS
            "swell_hz": float(rng.uniform(0.05, 0.4)),
            "swell_depth": float(rng.uniform(0.0, 0.6)),
            "crackle_rate": float(rng.uniform(0, 25)) if rng.uniform() < 0.3 else 0.0,
        },
    }


def _plan_character(rng: np.random.Generator) -> dict:
    """The recurring main character: a face with its own look and voice."""
    skin = _hsv(rng.uniform(0.02, 0.1), rng.uniform(0.25, 0.6), rng.uniform(0.45, 0.95))
    scale = float(rng.uniform(0.9, 1.2))
    vowels = [[730.0, 1090.0], [270.0, 2290.0], [300.0, 870.0], [530.0, 1840.0]]
    tract = float(rng.uniform(0.85, 1.2))  # vocal tract scale: the voice's timbre
    return {
        "skin": skin, "hair": _hsv(rng.uniform(), rng.uniform(0.2, 0.9), rng.uniform(0.05, 0.9)),
        "shirt": _hsv(rng.uniform(), rng.uniform(0.5, 1.0), rng.uniform(0.4, 1.0)),
        "hat": _hsv(rng.uniform(), 0.8, 0.7) if rng.uniform() < 0.35 else None,
        "head_rx": float(rng.uniform(7.5, 10.0) * scale), "head_ry": float(rng.uniform(9.5, 12.5) * scale),
        "eye_gap": float(rng.uniform(2.6, 4.0) * scale), "scale": scale,
        "f0": float(np.exp(rng.uniform(np.log(95), np.log(260)))),
        "formants": [[f1 * tract, f2 * tract] for f1, f2 in vowels],
        "f3": float(2500 * tract), "voice_level": float(rng.uniform(0.12, 0.2)),
        "presence": float(rng.uniform(0.5, 0.85)),  # fraction of scenes the character is in
    }


def _plan_theme(rng: np.random.Generator) -> dict:
    """The recurring theme melody: notes of a pentatonic scale, a tempo and a timbre."""
    root = float(np.exp(rng.uniform(np.log(196), np.log(392))))
    scale = [0, 2, 4, 7, 9] if rng.uniform() < 0.5 else [0, 3, 5, 7, 10]
    beat = 60.0 / float(rng.uniform(95, 140))
    notes, t = [], 0.0
    for _ in range(int(rng.integers(5, 9))):
        semis = scale[int(rng.integers(len(scale)))] + 12 * int(rng.integers(0, 2))
        dur = beat * float(rng.choice([0.5, 1.0, 1.0, 1.5, 2.0]))
        notes.append([t, dur, root * 2 ** (semis / 12)])
        t += dur
    return {
        "notes": notes, "length": t + 0.4, "harmonics": [float(x) for x in rng.uniform(0.1, 1.0, 5)],
        "decay": float(rng.uniform(0.2, 0.6)), "level": float(rng.uniform(0.08, 0.13)),
        "per_scene": float(rng.uniform(0.25, 0.5)),  # probability a scene plays the theme
    }


def _cut_score(a: np.ndarray, b: np.ndarray) -> float:
    """PySceneDetect's ContentDetector score between two RGB uint8 frames: the mean absolute
    difference of hue, saturation and value (OpenCV HSV), averaged over the three channels."""
    import cv2  # opencv is a dependency of scenedetect; imported here to keep module import light

    ha = cv2.cvtColor(np.ascontiguousarray(a[..., ::-1]), cv2.COLOR_BGR2HSV).astype(np.int16)
    hb = cv2.cvtColor(np.ascontiguousarray(b[..., ::-1]), cv2.COLOR_BGR2HSV).astype(np.int16)
    return float(np.abs(ha - hb).mean())


_CUT_SCORE_MIN = 45.0  # ContentDetector's default threshold is 27: every planned cut clears it by far


def _plan_locations(rng: np.random.Generator, content: dict, hue: float, count: int) -> tuple[list, list]:
    """The content's pool of locations and, per location, the ones a hard cut may go to next.

    Locations spread over value, hue and saturation around the content's palette hue; one whose
    graded picture is too close to all others (ContentDetector score below ``_CUT_SCORE_MIN``,
    letterbox included) is drawn again, so that every cut the titles make is detectable.
    """
    values = rng.permutation(np.linspace(0.3, 1.0, count))
    hues = rng.permutation(np.linspace(-0.3, 0.3, count))
    sats = rng.permutation(np.linspace(0.15, 0.85, count))
    locations = [_plan_location(rng, hue + float(h), float(v), float(sa)) for h, v, sa in zip(hues, values, sats)]
    frames = [location_frame(content, loc) for loc in locations]
    for _ in range(20):
        scores = np.array([[_cut_score(x, y) if i != j else 0.0 for j, y in enumerate(frames)]
                           for i, x in enumerate(frames)])
        weak = [i for i in range(count) if scores[i].max() < _CUT_SCORE_MIN]
        if not weak:
            break
        i = weak[0]
        locations[i] = _plan_location(rng, float(rng.uniform()), float(rng.uniform(0.3, 1.0)), float(rng.uniform(0.15, 0.85)))
        frames[i] = location_frame(content, locations[i])
    successors = [[j for j in range(count) if scores[i, j] >= _CUT_SCORE_MIN] or [int(scores[i].argmax())]
                  for i in range(count)]
    return locations, successors


def _plan_content(seed: int, index: int, kind: str, content_id: str, genre: str) -> dict:
    """Everything a movie or a TV show keeps across its whole duration (and all its episodes)."""
    rng = _rng(seed, 1, index)
    style = _GENRE_STYLE[genre]
    width, height = (192, 108) if rng.uniform() < 0.5 else (160, 120)
    content = {
        "content_id": content_id, "kind": kind, "genre": genre,
        "width": width, "height": height, "fps": int(rng.choice([24, 25, 30])),
        "sample_rate": int(rng.choice([44100, 48000])), "channels": 6 if index == 0 or rng.uniform() < 0.1 else 2,
        "tint": {
            "gain": [float(g) for g in np.asarray(style["tint"]) * rng.normal(1.0, 0.07, 3)],
            "lift": [float(x) for x in rng.normal(0.0, 0.025, 3)],
            "saturation": float(style["saturation"] * rng.uniform(0.85, 1.15)),
            "brightness": float(style["brightness"] * rng.uniform(0.92, 1.08)),
        },
        "letterbox": float(rng.uniform(0.08, 0.13)) if kind == "movie" and rng.uniform() < 0.4 else 0.0,
        "logo": {
            "corner": str(rng.choice(["tl", "tr", "bl", "br"])), "color": _hsv(rng.uniform(), 0.3, 1.0),
            "shape": str(rng.choice(["disc", "square", "bar"])), "alpha": float(rng.uniform(0.45, 0.7)),
        } if kind == "show" else None,
        "character": _plan_character(rng),
        "theme": _plan_theme(rng),
        "hum_hz": float(np.exp(rng.uniform(np.log(45), np.log(420)))),
        "hum_level": float(rng.uniform(0.006, 0.014)),
        "eq_bass": float(rng.uniform(-0.4, 0.8)),
    }
    content["locations"], content["successors"] = _plan_locations(
        rng, content, float(rng.uniform()), int(rng.integers(4, 7)))
    return content


def _scene_bounds(rng: np.random.Generator, duration: float, lo: float, hi: float) -> list[float]:
    """Scene boundaries (seconds, from 0 to duration) with lengths in [lo, hi] where possible."""
    hi = min(hi, max(3.0, duration / 2))
    lo = max(min(lo, hi / 2), 1.5)
    bounds, t = [0.0], 0.0
    while duration - t > hi:
        length = float(rng.uniform(lo, hi))
        if duration - t - length < lo:
            length = (duration - t) / 2
        t += length
        bounds.append(t)
    bounds.append(duration)
    return bounds


def _plan_utterances(rng: np.random.Generator, start: float, end: float, n_vowels: int) -> list[list[float]]:
    """Syllables ``[start, length, vowel]`` (absolute seconds) of the character's lines in a scene."""
    syllables: list[list[float]] = []
    t = start + float(rng.uniform(0.2, 1.5))
    while t < end - 0.5:
        line_end = min(t + float(rng.uniform(0.8, 3.5)), end - 0.2)
        while t < line_end:
            length = float(rng.uniform(0.12, 0.28))
            if t + length > line_end:
                break
            syllables.append([t, length, int(rng.integers(n_vowels))])
            t += length + float(rng.uniform(0.02, 0.07))
        t += float(rng.uniform(0.6, 2.5))
    return syllables


def _plan_title(seed: int, index: int, content: dict, title_id: str, show_id: str, path: str,
                seconds: float, broken: str | None) -> dict:
    rng = _rng(seed, 2, index)
    fps, width, height = content["fps"], content["width"], content["height"]
    style = _GENRE_STYLE[content["genre"]]
    num_frames = max(1, round(seconds * fps))
    duration = num_frames / fps
    bounds = _scene_bounds(rng, duration, *style["scene"])
    frames = sorted({round(b * fps) for b in bounds})
    scenes, prev_loc = [], -1
    for f0, f1 in itertools.pairwise(frames):
        start, end = f0 / fps, f1 / fps
        choices = content["successors"][prev_loc] if prev_loc >= 0 else range(len(content["locations"]))
        loc = int(rng.choice(list(choices)))
        prev_loc = loc
        length = end - start
        character = None
        if rng.uniform() < content["character"]["presence"] or len(scenes) == 0:
            character = {
                "x": float(rng.uniform(0.25, 0.75) * width), "y": float(rng.uniform(0.32, 0.45) * height),
                "wander": float(rng.uniform(0.03, 0.1) * width), "wander_hz": float(rng.uniform(0.05, 0.2)),
                "phase": float(rng.uniform(0, 2 * np.pi)),
                "syllables": _plan_utterances(rng, start, end, len(content["character"]["formants"])),
            }
        events = []
        n_events = max(1, int(rng.poisson(style["events_per_min"] * length / 60.0)))
        for _ in range(n_events):
            cls = EVENT_CLASSES[int(rng.integers(len(EVENT_CLASSES)))]
            dur = min(float(rng.uniform(1.5, max(1.5, min(5.0, length)))), length)
            ev = cls.plan(rng, dur, width, height)
            ev["start"] = float(start + rng.uniform(0.0, length - dur))
            events.append(ev)
        themes = []
        theme_len = content["theme"]["length"]
        if (len(scenes) == 0 or rng.uniform() < content["theme"]["per_scene"]) and length > 1.0:
            themes.append(float(start + rng.uniform(0.0, max(0.0, min(1.0, length - theme_len)))))
        scenes.append({
            "start": start, "end": end, "start_frame": f0, "end_frame": f1, "location": loc,
            "pan_offset": float(rng.uniform(0, 1)), "noise_seed": int(rng.integers(2**31)),
            "character": character, "events": events, "themes": themes,
        })
    return {
        "title_id": title_id, "show_id": show_id, "genre": content["genre"], "content": content["content_id"],
        "path": path, "width": width, "height": height, "fps": fps,
        "sample_rate": content["sample_rate"], "channels": content["channels"],
        "num_frames": num_frames, "duration": duration, "audio": broken != "no_audio",
        "broken": broken, "scenes": scenes,
    }


def _plan_clip_setting(rng: np.random.Generator) -> dict:
    """A downstream clip's setting (background + ambient), shared by a group's clips."""
    loc = _plan_location(rng, float(rng.uniform()), float(rng.uniform(0.35, 0.9)), float(rng.uniform(0.2, 0.8)))
    loc["ambient"]["level"] *= 0.6
    return loc


def _plan_ucf101(seed: int) -> dict:
    classes = DOWNSTREAM_CLASSES["ucf101"]
    names = [event_class(c).ucf101 for c in classes]
    clips = []
    for ci, cls in enumerate(classes):
        rng = _rng(seed, 3, 0, ci)
        for g in range(1, UCF_GROUPS + 1):
            setting = _plan_clip_setting(rng)
            for c in range(1, UCF_CLIPS_PER_GROUP + 1):
                name = names[ci]
                clips.append({
                    "path": f"ucf101/UCF-101/{name}/v_{name}_g{g:02d}_c{c:02d}.avi", "class": name,
                    "label": ci + 1, "group": g, "setting": setting, "pan_offset": float(rng.uniform()),
                    "noise_seed": int(rng.integers(2**31)), "channels": 2,
                    "event": event_class(cls).plan(rng, DOWNSTREAM_SECONDS, *DOWNSTREAM_SIZE),
                })
    return {"classes": names, "clips": clips}


def _plan_hmdb51(seed: int) -> dict:
    classes = DOWNSTREAM_CLASSES["hmdb51"]
    names = [event_class(c).hmdb51 for c in classes]
    clips, splits = [], {1: {}, 2: {}, 3: {}}
    for ci, cls in enumerate(classes):
        rng = _rng(seed, 3, 1, ci)
        by_group: dict[int, list[str]] = {}
        for g in range(1, HMDB_GROUPS + 1):
            setting = _plan_clip_setting(rng)
            source = f"Demo_Reel_{ci + 1:02d}{g:02d}"
            tags = [str(rng.choice(["f", "h", "u"])), str(rng.choice(["cm", "nm"])),
                    f"np{int(rng.integers(1, 3))}", str(rng.choice(["fr", "ba", "le", "ri"])),
                    str(rng.choice(["bad", "med", "goo"]))]
            for k in range(HMDB_CLIPS_PER_GROUP):
                stem = "_".join([source, names[ci], *tags, str(k)])
                clips.append({
                    "path": f"hmdb51/videos/{names[ci]}/{stem}.avi", "class": names[ci], "group": g,
                    "setting": setting, "pan_offset": float(rng.uniform()),
                    "noise_seed": int(rng.integers(2**31)), "channels": 1,
                    "event": event_class(cls).plan(rng, DOWNSTREAM_SECONDS, *DOWNSTREAM_SIZE),
                })
                by_group.setdefault(g, []).append(f"{stem}.avi")
        for s in (1, 2, 3):
            order = [int(g) for g in rng.permutation(HMDB_GROUPS) + 1]
            marks: dict[str, int] = {}
            for rank, g in enumerate(order):
                for name in by_group[g]:
                    marks[name] = 2 if rank < HMDB_TEST_GROUPS else 1  # 30% of the source videos tested
            train = [n for n in sorted(marks) if marks[n] == 1]
            marks[train[int(rng.integers(len(train)))]] = 0  # one clip left out, as in the official files
            splits[s][names[ci]] = dict(sorted(marks.items()))
    return {"classes": names, "clips": clips, "splits": {str(s): v for s, v in splits.items()}}


def _plan_esc50(seed: int) -> dict:
    classes = DOWNSTREAM_CLASSES["esc50"]
    rng = _rng(seed, 3, 2)
    src_ids = rng.choice(np.arange(10000, 300000), size=(len(classes), ESC_FOLDS, ESC_SOURCES), replace=False)
    clips = []
    for ci, cls in enumerate(classes):
        crng = _rng(seed, 3, 2, ci)
        for fold in range(1, ESC_FOLDS + 1):
            for src in (int(x) for x in src_ids[ci, fold - 1]):
                # a source recording: one quiet, steady background and level shared by its takes
                ambient = _plan_location(crng, 0.0, 0.5, 0.5)["ambient"]
                ambient.update(level=ambient["level"] * 0.3, swell_depth=ambient["swell_depth"] * 0.3, crackle_rate=0.0)
                peak = float(crng.uniform(0.5, 0.9))
                for take in "ABC"[:ESC_TAKES]:
                    duration = float(crng.uniform(0.5 * ESC_SECONDS, ESC_SECONDS))
                    filename = f"{fold}-{src}-{take}-{ci}.wav"
                    clips.append({
                        "path": f"esc50/audio/{filename}", "filename": filename, "fold": fold, "target": ci,
                        "category": event_class(cls).esc50, "esc10": cls in _ESC10, "src_file": src, "take": take,
                        "offset": float(crng.uniform(0.0, ESC_SECONDS - duration)),
                        "ambient": ambient, "peak": peak, "noise_seed": int(crng.integers(2**31)),
                        "event": event_class(cls).plan(crng, duration, *DOWNSTREAM_SIZE),
                    })
    clips.sort(key=lambda c: c["filename"])
    return {"classes": [event_class(c).esc50 for c in classes], "clips": clips}


class _Catalog:
    """The contents and titles in planning order; a content's or a title's position seeds its stream."""

    def __init__(self, seed: int):
        self.seed = seed
        self.genre_rng = _rng(seed, 0)
        self.contents: list[dict] = []
        self.titles: list[dict] = []

    def add_content(self, kind: str, content_id: str) -> dict:
        genre = GENRES[int(self.genre_rng.integers(len(GENRES)))]
        content = _plan_content(self.seed, len(self.contents), kind, content_id, genre)
        self.contents.append(content)
        return content

    def add_title(self, content: dict, title_id: str, show_id: str, path: str, seconds: float,
                  broken_reason: str | None = None) -> None:
        self.titles.append(_plan_title(self.seed, len(self.titles), content, title_id, show_id, path, seconds,
                                       broken_reason))


def _plan_broken(catalog: _Catalog, title_seconds: float) -> list[dict]:
    """Add the four broken titles (each its own movie content); returns their ``broken.json`` entries."""
    specs = [
        ("no_audio", "movie_noaudio.mp4", min(title_seconds, _BROKEN_SECONDS),
         "valid H.264 video but no audio stream"),
        ("truncated", "movie_truncated.mp4", min(title_seconds, _BROKEN_SECONDS),
         "the first half of the bytes of a valid mp4 (the moov index at the end is missing)"),
        ("not_media", "movie_notmedia.mkv", 0.0, "an HTML error page saved with a video extension"),
        ("too_short", "movie_short.mp4", _SHORT_SECONDS,
         f"valid audio and video but only {_SHORT_SECONDS} s long, shorter than one snippet"),
    ]
    entries = []
    for reason, filename, seconds, detail in specs:
        tid = filename.split(".")[0]
        content = catalog.add_content("movie", tid)
        path = f"titles/movies/{filename}"
        if reason == "not_media":
            catalog.titles.append({"title_id": tid, "show_id": "", "genre": content["genre"], "content": tid,
                                   "path": path, "broken": reason})
        else:
            catalog.add_title(content, tid, "", path, seconds, reason)
        entries.append({"path": path, "title_id": tid, "reason": reason, "detail": detail})
    return entries


def _check_sizes(num_movies: int, num_shows: int, episodes_per_show: int, title_seconds: float) -> None:
    if num_movies < 0 or num_shows < 0 or episodes_per_show < 1:
        raise ValueError(f"sizes must be >= 0 (episodes >= 1), got movies={num_movies}, shows={num_shows}, "
                         f"episodes={episodes_per_show}")
    if num_movies + num_shows == 0:
        raise ValueError("the demo corpus needs at least one movie or one show")
    if title_seconds < 2 * _SHORT_SECONDS:
        raise ValueError(f"title_seconds must be >= {2 * _SHORT_SECONDS} s, got {title_seconds}")


def plan_demo_corpus(
    *,
    seed: int = 0,
    num_movies: int = 6,
    num_shows: int = 2,
    episodes_per_show: int = 3,
    title_seconds: float = 60.0,
    downstream: bool = True,
    broken: bool = True,
) -> dict:
    """The manifest: every decision :func:`generate_demo_corpus` renders, as a JSON-serializable dict.

    Titles are ``movie_XX`` (``titles/movies/``), ``show_XX_eYY`` of show ``show_XX``
    (``titles/shows/show_XX/``), and, with ``broken``, ``movie_noaudio``, ``movie_truncated``,
    ``movie_notmedia`` and ``movie_short``.  Bad sizes raise ValueError.
    """
    _check_sizes(num_movies, num_shows, episodes_per_show, title_seconds)
    catalog = _Catalog(seed)
    for m in range(num_movies):
        tid = f"movie_{m:02d}"
        catalog.add_title(catalog.add_content("movie", tid), tid, "", f"titles/movies/{tid}.mp4", title_seconds)
    for s in range(num_shows):
        sid = f"show_{s:02d}"
        content = catalog.add_content("show", sid)
        for e in range(1, episodes_per_show + 1):
            tid = f"{sid}_e{e:02d}"
            catalog.add_title(content, tid, sid, f"titles/shows/{sid}/{tid}.mp4", title_seconds)
    broken_list = _plan_broken(catalog, title_seconds) if broken else []
    manifest = {
        "generator": _GENERATOR, "version": _MANIFEST_VERSION, "seed": int(seed),
        "sizes": {"num_movies": num_movies, "num_shows": num_shows, "episodes_per_show": episodes_per_show,
                  "title_seconds": float(title_seconds), "downstream": bool(downstream), "broken": bool(broken)},
        "event_classes": list(EVENT_CLASS_NAMES),
        "contents": {c["content_id"]: c for c in catalog.contents},
        "titles": catalog.titles,
        "broken": broken_list,
        "downstream": {"ucf101": _plan_ucf101(seed), "hmdb51": _plan_hmdb51(seed), "esc50": _plan_esc50(seed)}
        if downstream else None,
    }
    return json.loads(json.dumps(manifest))  # plain JSON types only (what the file will hold)
