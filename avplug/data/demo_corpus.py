"""The built-in synthetic demo corpus: a small catalog of long-form titles plus downstream stand-ins.

``generate_demo_corpus(out_dir, seed=0, ...)`` writes real media files (H.264 + AAC in .mp4 for the
titles, MPEG-4 Part 2 + MP2 in .avi for the video stand-ins, 16-bit PCM .wav for ESC-50), all drawn
and synthesized with numpy, deterministic from the seed.  The catalog behaves like the paper's
movies and TV shows in the ways the paper's phenomena depend on:

* **Titles.**  Movies and TV shows with several episodes; every title has a genre out of the paper's
  seven (:data:`GENRES`), and genre shapes the pacing (scene lengths, how busy scenes are) and the
  look (brightness, colour grade).
* **Content-exclusive artifacts** (the shortcut the paper says a contrastive model latches onto),
  shared by all episodes of a show: a colour grade (tint, lift, saturation), letterbox bars for some
  movies and a channel logo for shows, a recurring main character (a face that talks, its mouth
  moving with its voice), a theme melody that recurs, a constant mastering hum at a title-specific
  frequency and a bass EQ.
* **Scenes** of 3-20 s (shorter in titles too short for that) separated by hard cuts.  Each scene
  takes place in a "location" of the title's pool (locations recur, and a show's episodes share
  them) with its own background (gradient + texture, slow camera pan) and its own ambient sound
  (noise with a location-specific spectrum).  The true boundaries are in ``scenes.json``.
* **Audio-visual events** from the shared vocabulary :data:`EVENT_CLASSES`
  (:mod:`avplug.data.demo_events`), placed at random times and positions inside scenes, with the
  sound causally synchronized to the motion (and panned with it).
* **Broken titles** (unless ``broken=False``), listed in ``meta.csv`` like the others so that ingest
  has to reject them, and described in ``broken.json``: a file without an audio stream, an mp4 cut in
  the middle (its index is missing, as after an interrupted download), a non-media file with a video
  extension, and a title shorter than one snippet (1.5 s).
* **Downstream stand-ins** (unless ``downstream=False``) in the exact on-disk layouts of UCF101,
  HMDB51 and ESC-50, built from the same event vocabulary with each dataset's naming style.

Layout of ``out_dir``::

    manifest.json                  every generation decision (the plan the files were rendered from)
    meta.csv                       path,title_id,show_id,genre  (path relative to out_dir; show_id
                                   empty for movies)
    scenes.json                    true scene boundaries per title (seconds and frames)
    broken.json                    which listed files are broken and why
    titles/movies/<title_id>.mp4
    titles/shows/<show_id>/<title_id>.mp4
    ucf101/UCF-101/<Class>/v_<Class>_gXX_cYY.avi
    ucf101/ucfTrainTestlist/classInd.txt, trainlist0{1,2,3}.txt, testlist0{1,2,3}.txt
    hmdb51/videos/<class>/<name>.avi
    hmdb51/testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt
    esc50/audio/<fold>-<src_file>-<take>-<target>.wav
    esc50/meta/esc50.csv

Split rules of the stand-ins (the official rules scaled down, sized so that every split or fold
tests at least 200 clips): UCF101 has ``UCF_GROUPS`` = 15 groups of ``UCF_CLIPS_PER_GROUP`` = 7 clips
per class (a group is one setting: background and ambient sound) and split ``s`` tests the ``s``-th
third of the groups, 5 per class, 210 clips (official: 7 groups per split out of 25); list files use
CRLF line endings and 1-based labels, ``classInd.txt`` is ``"<index> <Class>"``.  HMDB51 marks every
clip per split with ``1`` (train), ``2`` (test) or ``0`` (unused); it has ``HMDB_GROUPS`` = 30 source
videos (groups) of 4 clips per class, the clips of a source video stay together, and
``HMDB_TEST_GROUPS`` = 9 of them (30%, as in the official ``7030`` splits; 216 clips) are tested per
split, drawn anew for each split (test sets of different splits overlap, as the official ones do);
one clip per class and split is unused.  ESC-50 has five folds with ``ESC_SOURCES`` = 12 source
recordings per class and fold and ``ESC_TAKES`` = 3 takes (A, B, C: a shared background and level,
each its own event) of each, 216 clips per fold; ``esc50.csv`` has the real header
``filename,fold,target,category,esc10,src_file,take``.

Title media: 160x120 or 192x108 pixels, 24/25/30 fps, 44.1 or 48 kHz AAC, stereo except the first
content (and a few others), which are 5.1.  Stand-in clips (kept short so that about 2,500 of them
render and decode in seconds): 2 s, 160x120 at 25 fps, 16 kHz MP2 audio (stereo for UCF101, mono
for HMDB51), written 481 samples early so that, after the MP2 decoder's delay, the decoded sound lines
up with the picture.  ESC-50: 3 s, 16 kHz, mono, 16-bit (the real ones: 5 s at 44.1 kHz).
(AAC in .mp4 needs no such care: the muxer records the encoder delay and decoders remove it.)

Determinism: the whole plan (``manifest.json``) is a pure function of the arguments, and rendering
uses no other randomness, so the same seed gives the same decoded frames and samples (the encoders
run single-threaded per file).

API:

* ``generate_demo_corpus(out_dir, *, seed=0, num_movies=6, num_shows=2, episodes_per_show=3,
  title_seconds=60.0, downstream=True, broken=True, workers=None, progress=True) -> DemoCorpus``
  plans, renders in ``workers`` processes (default: the usable cores) with a tqdm bar, and writes
  the sidecars; :class:`DemoCorpus` holds the paths.
* ``plan_demo_corpus(**same sizes) -> dict``: the manifest alone (no files), e.g. to inspect the
  scenes or the events a seed gives.  ``manifest["titles"][i]["scenes"][j]["events"]`` are the
  event plans of :mod:`avplug.data.demo_events` (event-relative ``onsets``) plus their absolute
  ``start`` in the title.
* :data:`EVENT_CLASSES` (re-exported), :data:`GENRES`, :data:`DOWNSTREAM_CLASSES` (the event classes
  of each stand-in), :data:`BROKEN_REASONS`.

Typical use::

    corpus = generate_demo_corpus("output/demo/corpus", seed=0)
    corpus.meta_csv, corpus.ucf101_root, corpus.hmdb51_root, corpus.esc50_root
"""
from __future__ import annotations

import colorsys
import csv
import itertools
import json
import math
import multiprocessing
import os
import shutil
import sys
import wave
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from scipy import fft as sp_fft
from scipy import signal
from tqdm import tqdm

from avplug.data.demo_events import (
    EVENT_CLASS_NAMES,
    EVENT_CLASSES,
    draw_disc,
    draw_ellipse,
    draw_rect,
    event_class,
    pan_gains,
)
from avplug.resources import available_cpus

__all__ = [
    "BROKEN_REASONS",
    "DOWNSTREAM_CLASSES",
    "EVENT_CLASSES",
    "EVENT_CLASS_NAMES",
    "GENRES",
    "UCF_GROUPS",
    "DemoCorpus",
    "generate_demo_corpus",
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

_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}
_MP2_DELAY = 481  # samples the MP2 decoder's filter bank delays the sound by
_MANIFEST_VERSION = 1


@dataclass(frozen=True)
class DemoCorpus:
    """Where :func:`generate_demo_corpus` put things (``None`` for parts that were not asked for)."""

    root: Path
    manifest_json: Path
    meta_csv: Path
    scenes_json: Path
    broken_json: Path | None
    titles: tuple[Path, ...]  # every file listed in meta.csv, broken ones included
    ucf101_root: Path | None
    hmdb51_root: Path | None
    esc50_root: Path | None


# ---------------------------------------------------------------------------------------------
# Planning: a JSON-serializable description of every file, a pure function of the arguments.
# ---------------------------------------------------------------------------------------------
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
    width, height = content["width"], content["height"]
    grade, lift = _grade_matrix(content["tint"])
    bar = round(content["letterbox"] * height)

    def frame(loc):
        img = _location_canvas(loc, width, height, 0) @ grade + lift
        if bar:
            img[:bar] = 0.0
            img[height - bar :] = 0.0
        return _to_uint8(img)

    values = rng.permutation(np.linspace(0.3, 1.0, count))
    hues = rng.permutation(np.linspace(-0.3, 0.3, count))
    sats = rng.permutation(np.linspace(0.15, 0.85, count))
    locations = [_plan_location(rng, hue + float(h), float(v), float(sa)) for h, v, sa in zip(hues, values, sats)]
    frames = [frame(loc) for loc in locations]
    for _ in range(20):
        scores = np.array([[_cut_score(x, y) if i != j else 0.0 for j, y in enumerate(frames)]
                           for i, x in enumerate(frames)])
        weak = [i for i in range(count) if scores[i].max() < _CUT_SCORE_MIN]
        if not weak:
            break
        i = weak[0]
        locations[i] = _plan_location(rng, float(rng.uniform()), float(rng.uniform(0.3, 1.0)), float(rng.uniform(0.15, 0.85)))
        frames[i] = frame(locations[i])
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


def _ucf_test_groups(split: int) -> range:
    """The groups UCF101 split ``split`` tests: the ``split``-th third of ``1..UCF_GROUPS``."""
    size = UCF_GROUPS // 3
    return range((split - 1) * size + 1, split * size + 1)


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
    ``movie_notmedia`` and ``movie_short``.
    """
    if num_movies < 0 or num_shows < 0 or episodes_per_show < 1:
        raise ValueError(f"sizes must be >= 0 (episodes >= 1), got movies={num_movies}, shows={num_shows}, "
                         f"episodes={episodes_per_show}")
    if num_movies + num_shows == 0:
        raise ValueError("the demo corpus needs at least one movie or one show")
    if title_seconds < 2 * _SHORT_SECONDS:
        raise ValueError(f"title_seconds must be >= {2 * _SHORT_SECONDS} s, got {title_seconds}")
    genre_rng = _rng(seed, 0)
    contents: list[dict] = []
    titles: list[dict] = []

    def add_content(kind: str, content_id: str) -> dict:
        genre = GENRES[int(genre_rng.integers(len(GENRES)))]
        content = _plan_content(seed, len(contents), kind, content_id, genre)
        contents.append(content)
        return content

    def add_title(content, title_id, show_id, path, seconds, broken_reason=None):
        titles.append(_plan_title(seed, len(titles), content, title_id, show_id, path, seconds, broken_reason))

    for m in range(num_movies):
        tid = f"movie_{m:02d}"
        add_title(add_content("movie", tid), tid, "", f"titles/movies/{tid}.mp4", title_seconds)
    for s in range(num_shows):
        sid = f"show_{s:02d}"
        content = add_content("show", sid)
        for e in range(1, episodes_per_show + 1):
            tid = f"{sid}_e{e:02d}"
            add_title(content, tid, sid, f"titles/shows/{sid}/{tid}.mp4", title_seconds)
    broken_list = []
    if broken:
        specs = [
            ("no_audio", "movie_noaudio.mp4", min(title_seconds, _BROKEN_SECONDS),
             "valid H.264 video but no audio stream"),
            ("truncated", "movie_truncated.mp4", min(title_seconds, _BROKEN_SECONDS),
             "the first half of the bytes of a valid mp4 (the moov index at the end is missing)"),
            ("not_media", "movie_notmedia.mkv", 0.0, "an HTML error page saved with a video extension"),
            ("too_short", "movie_short.mp4", _SHORT_SECONDS,
             f"valid audio and video but only {_SHORT_SECONDS} s long, shorter than one snippet"),
        ]
        for reason, filename, seconds, detail in specs:
            tid = filename.split(".")[0]
            content = add_content("movie", tid)
            path = f"titles/movies/{filename}"
            if reason == "not_media":
                titles.append({"title_id": tid, "show_id": "", "genre": content["genre"], "content": tid,
                               "path": path, "broken": reason})
            else:
                add_title(content, tid, "", path, seconds, reason)
            broken_list.append({"path": path, "title_id": tid, "reason": reason, "detail": detail})
    manifest = {
        "generator": "avplug.data.demo_corpus", "version": _MANIFEST_VERSION, "seed": int(seed),
        "sizes": {"num_movies": num_movies, "num_shows": num_shows, "episodes_per_show": episodes_per_show,
                  "title_seconds": float(title_seconds), "downstream": bool(downstream), "broken": bool(broken)},
        "event_classes": list(EVENT_CLASS_NAMES),
        "contents": {c["content_id"]: c for c in contents},
        "titles": titles,
        "broken": broken_list,
        "downstream": {"ucf101": _plan_ucf101(seed), "hmdb51": _plan_hmdb51(seed), "esc50": _plan_esc50(seed)}
        if downstream else None,
    }
    return json.loads(json.dumps(manifest))  # plain JSON types only (what the file will hold)


# ---------------------------------------------------------------------------------------------
# Rendering: pictures.
# ---------------------------------------------------------------------------------------------
def _location_canvas(loc: dict, width: int, height: int, margin: int) -> np.ndarray:
    """The location's background, ``(height, width + margin, 3)`` float32 (the margin is for panning)."""
    w = width + margin
    yy, xx = np.mgrid[0:height, 0:w].astype(np.float32) / np.float32(height)
    a = loc["angle"]
    along = np.cos(a) * xx + np.sin(a) * yy
    along = (along - along.min()) / max(float(along.max() - along.min()), 1e-6)
    img = (np.asarray(loc["top"], np.float32) * (1 - along[..., None])
           + np.asarray(loc["bottom"], np.float32) * along[..., None])
    f, ph, c = loc["tex_freq"], loc["tex_phase"], loc["tex_contrast"]
    across = -np.sin(a) * xx + np.cos(a) * yy
    kind = loc["texture"]
    if kind == "stripes":
        tex = np.sin(2 * np.pi * f * across + ph)
    elif kind == "checker":
        tex = np.sign(np.sin(2 * np.pi * f * xx + ph) * np.sin(2 * np.pi * f * yy + ph)) * 0.7
    elif kind == "waves":
        tex = np.sin(2 * np.pi * f * xx + 2.0 * np.sin(2 * np.pi * 0.7 * f * yy + ph))
    else:  # blobs
        tex = np.zeros_like(xx)
        for bx, by, br, dv in loc["blobs"]:
            tex += dv / 0.3 * np.exp(-((xx - bx) ** 2 + (yy - by) ** 2) / (2 * br**2))
    img *= (1.0 + c * tex)[..., None]
    if loc["floor"] is not None:
        top = int(loc["floor"] * height)
        shade = np.linspace(1.0, 0.7, height - top, dtype=np.float32)[:, None, None]
        img[top:] = np.asarray(loc["floor_color"], np.float32) * shade * (1.0 + 0.5 * c * tex[top:, :, None])
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def _pan_window(canvas: np.ndarray, width: int, speed: float, offset: float, t: float) -> np.ndarray:
    """The part of a panning background seen at scene time ``t`` (back and forth over the margin)."""
    margin = canvas.shape[1] - width
    if margin <= 0:
        return canvas
    pos = (offset * 2 * margin + speed * t) % (2 * margin)
    x = int(pos if pos <= margin else 2 * margin - pos)
    return canvas[:, x : x + width]


def _mouth_opening(syllables: np.ndarray, t: float) -> float:
    if len(syllables) == 0:
        return 0.0
    start, length = syllables[:, 0], syllables[:, 1]
    inside = (t >= start) & (t < start + length)
    if not inside.any():
        return 0.0
    return float(np.sin(np.pi * (t - start[inside]) / length[inside]).max())


@dataclass(frozen=True)
class _Sprite:
    """A pre-drawn picture with premultiplied colour and coverage, pasted at whole-pixel positions."""

    rgb: np.ndarray  # (h, w, 3), premultiplied by alpha
    alpha: np.ndarray  # (h, w)
    anchor: tuple[float, float]  # (x, y) inside the patch that is placed at the requested point

    def paste(self, img: np.ndarray, x: float, y: float) -> tuple[int, int]:
        """Paste with the anchor at about ``(x, y)``; returns the whole-pixel anchor position used."""
        h, w = self.alpha.shape
        x0, y0 = round(x - self.anchor[0]), round(y - self.anchor[1])
        ya, yb = max(y0, 0), min(y0 + h, img.shape[0])
        xa, xb = max(x0, 0), min(x0 + w, img.shape[1])
        if ya < yb and xa < xb:
            region = img[ya:yb, xa:xb]
            region *= 1.0 - self.alpha[ya - y0 : yb - y0, xa - x0 : xb - x0, None]
            region += self.rgb[ya - y0 : yb - y0, xa - x0 : xb - x0]
        return x0 + int(self.anchor[0]), y0 + int(self.anchor[1])


def _character_sprite(ch: dict, unit: float) -> _Sprite:
    """The main character without its mouth (head, hair, optional hat, eyes, shoulders)."""
    s = ch["scale"] * unit
    rx, ry = ch["head_rx"] * unit, ch["head_ry"] * unit
    width = math.ceil(2 * max(15 * s, 1.3 * rx)) + 4
    top = math.ceil(1.6 * ry) + 2
    height = math.ceil(top + ry + 30 * s) + 2
    patch = np.zeros((height, width, 4), np.float32)
    x, y = width // 2, top

    def rgba(color):
        return [*color, 1.0]

    draw_ellipse(patch, x, y + ry + 14 * s, 15 * s, 16 * s, rgba(ch["shirt"]))
    draw_ellipse(patch, x, y, rx, ry, rgba(ch["skin"]))
    draw_ellipse(patch, x, y - 0.6 * ry, rx * 1.05, ry * 0.5, rgba(ch["hair"]))
    if ch["hat"] is not None:
        draw_rect(patch, x - 1.3 * rx, y - 0.9 * ry, x + 1.3 * rx, y - 0.75 * ry, rgba(ch["hat"]))
        draw_rect(patch, x - 0.8 * rx, y - 1.5 * ry, x + 0.8 * rx, y - 0.8 * ry, rgba(ch["hat"]))
    for side in (-1, 1):
        draw_disc(patch, x + side * ch["eye_gap"] * unit, y - 0.05 * ry, 1.3 * s, rgba((0.05, 0.05, 0.08)))
    return _Sprite(rgb=np.ascontiguousarray(patch[..., :3]), alpha=np.ascontiguousarray(patch[..., 3]),
                   anchor=(float(x), float(y)))


def _draw_character(img: np.ndarray, sprite: _Sprite, ch: dict, scene_ch: dict, syllables: np.ndarray,
                    t: float, unit: float) -> None:
    """The character at scene time ``t``: wandering slowly, its mouth opening with each syllable."""
    x = scene_ch["x"] + scene_ch["wander"] * math.sin(2 * math.pi * scene_ch["wander_hz"] * t + scene_ch["phase"])
    y = scene_ch["y"] + unit * math.sin(2 * math.pi * 0.7 * t)
    hx, hy = sprite.paste(img, x, y)
    opening = _mouth_opening(syllables, t)
    ry = ch["head_ry"] * unit
    draw_ellipse(img, hx, hy + 0.5 * ry, 0.35 * ch["head_rx"] * unit, (0.5 + 3.0 * opening) * ch["scale"] * unit,
                 (0.35, 0.05, 0.08))


def _grade_matrix(tint: dict) -> tuple[np.ndarray, np.ndarray]:
    """The title's colour grade as one affine map ``rgb @ M.T + b``.

    Gain (times brightness) and lift per channel, then saturation around the mean of the three
    channels: ``out = s * (g * x + l) + (1 - s) * mean(g * x + l)``.
    """
    g = np.asarray(tint["gain"], np.float64) * tint["brightness"]
    lift = np.asarray(tint["lift"], np.float64)
    s = tint["saturation"]
    matrix = s * np.diag(g) + (1.0 - s) / 3.0 * np.outer(np.ones(3), g)
    offset = s * lift + (1.0 - s) / 3.0 * lift.sum()
    return matrix.T.astype(np.float32), offset.astype(np.float32)


def _draw_logo(img: np.ndarray, logo: dict, unit: float) -> None:
    h, w = img.shape[:2]
    x = 12 * unit if logo["corner"][1] == "l" else w - 12 * unit
    y = 10 * unit if logo["corner"][0] == "t" else h - 10 * unit
    if logo["shape"] == "disc":
        draw_disc(img, x, y, 5 * unit, logo["color"], logo["alpha"])
    elif logo["shape"] == "square":
        draw_rect(img, x - 5 * unit, y - 5 * unit, x + 5 * unit, y + 5 * unit, logo["color"], logo["alpha"])
    else:
        draw_rect(img, x - 8 * unit, y - 2.5 * unit, x + 8 * unit, y + 2.5 * unit, logo["color"], logo["alpha"])


def _to_uint8(img: np.ndarray) -> np.ndarray:
    np.maximum(img, 0.0, out=img)
    np.minimum(img, 1.0, out=img)
    img *= 255.0
    img += 0.5
    return img.astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Rendering: sounds.  Everything is float32; sources are mixed straight into the output channels.
# ---------------------------------------------------------------------------------------------
def _ambient(amb: dict, n: int, sample_rate: int, rng: np.random.Generator, channels: int = 2,
             bass: float = 0.0) -> np.ndarray:
    """Decorrelated noise ``(channels, n)`` float32 with the location's spectrum and level.

    ``bass`` boosts (or cuts) below about 200 Hz: the title's mastering EQ.
    """
    if n == 0:
        return np.zeros((channels, 0), np.float32)
    n_fft = sp_fft.next_fast_len(n, real=True)
    f = np.maximum(sp_fft.rfftfreq(n_fft, 1.0 / sample_rate).astype(np.float32), np.float32(20.0))
    octaves = np.log2(f / np.float32(amb["peak_hz"])) / np.float32(amb["peak_octaves"])
    shape = (f / np.float32(1000.0)) ** np.float32(-amb["tilt"] / 2.0)
    shape *= 1.0 + np.float32(amb["peak_gain"]) * np.exp(np.float32(-0.5) * octaves * octaves)
    shape /= 1.0 + (f / np.float32(amb["cutoff_hz"])) ** 4
    shape *= 1.0 + np.float32(bass) / (1.0 + (f / np.float32(200.0)) ** 4)
    spectrum = sp_fft.rfft(rng.standard_normal((channels, n_fft), dtype=np.float32), axis=1)
    spectrum *= shape
    noise = sp_fft.irfft(spectrum, n=n_fft, axis=1)[:, :n]
    noise *= np.float32(amb["level"] / (np.sqrt(np.mean(np.square(noise))) + 1e-12))
    if amb["crackle_rate"] > 0:  # sparse clicks (rain, fire, static)
        click = _crackle(sample_rate)
        for c in range(channels):
            for pos in rng.integers(0, n, rng.poisson(amb["crackle_rate"] * n / sample_rate)):
                stop = min(pos + len(click), n)
                noise[c, pos:stop] += np.float32(3 * amb["level"] * rng.uniform(0.3, 1.0)) * click[: stop - pos]
    t = np.arange(n, dtype=np.float32) / np.float32(sample_rate)
    noise *= 1.0 + np.float32(amb["swell_depth"]) * np.sin(
        np.float32(2 * np.pi * amb["swell_hz"]) * t + np.float32(rng.uniform(0, 2 * np.pi)))
    ramp = min(int(0.01 * sample_rate), n // 2)
    if ramp > 0:
        fade = np.linspace(0.0, 1.0, ramp, dtype=np.float32)
        noise[:, :ramp] *= fade
        noise[:, n - ramp :] *= fade[::-1]
    return noise


def _crackle(sample_rate: int) -> np.ndarray:
    n = int(0.004 * sample_rate)
    x = np.sin(2 * np.pi * 3000 * np.arange(n) / sample_rate) * np.exp(-np.arange(n) / (0.0008 * sample_rate))
    return x.astype(np.float32)


def _add_voice(out: np.ndarray, route: np.ndarray, ch: dict, syllables, sample_rate: int) -> None:
    """Mix the character's voice into ``out`` (channels, samples) with per-channel gains ``route``:
    a glottal pulse train through the character's formants, one envelope per syllable."""
    n = out.shape[1]
    for start, length, vowel in syllables:
        m = int(length * sample_rate)
        tt = np.arange(m) / sample_rate
        f0 = ch["f0"] * (1.0 + 0.05 * np.sin(2 * np.pi * 5.5 * tt) - 0.1 * tt / length)
        x = np.diff(np.floor(np.cumsum(f0) / sample_rate), prepend=0.0)
        f1, f2 = ch["formants"][int(vowel)]
        for freq, bandwidth in ((f1, 80.0), (f2, 100.0), (ch["f3"], 150.0)):
            if freq >= sample_rate * 0.45:
                continue
            r = math.exp(-math.pi * bandwidth / sample_rate)
            x = signal.lfilter([1.0 - r], [1.0, -2.0 * r * math.cos(2 * math.pi * freq / sample_rate), r * r], x)
        x *= ch["voice_level"] * np.sin(np.pi * tt / length) / (np.abs(x).max() + 1e-9)
        a = round(start * sample_rate)
        b = min(a + m, n)
        if a < b:
            out[:, a:b] += route[:, None] * x[: b - a].astype(np.float32)


def _theme(theme: dict, sample_rate: int) -> np.ndarray:
    """One playing of the theme melody (float32, mono)."""
    out = np.zeros(int(theme["length"] * sample_rate))
    weights = theme["harmonics"]
    for start, dur, freq in theme["notes"]:
        m = int((dur + 0.3) * sample_rate)
        tt = np.arange(m) / sample_rate
        env = np.minimum(1.0, tt / 0.01) * np.exp(-tt / theme["decay"]) * np.clip((dur + 0.3 - tt) / 0.3, 0, 1)
        tone = sum(w * np.sin(2 * np.pi * freq * (h + 1) * tt) for h, w in enumerate(weights)
                   if freq * (h + 1) < sample_rate * 0.45)
        a = int(start * sample_rate)
        b = min(a + m, len(out))
        out[a:b] += (tone * env)[: b - a]
    return (theme["level"] * out / (np.abs(out).max() + 1e-9)).astype(np.float32)


# Routing of each source to the 5.1 channels FL FR FC LFE BL BR (ffmpeg's "5.1" order); stereo
# titles get the ITU downmix L = FL + FC/sqrt2 + BL/sqrt2 + LFE/2 (R likewise).
_G = 1.0 / math.sqrt(2.0)
_DOWNMIX = np.array([[1, 0, _G, 0.5, _G, 0], [0, 1, _G, 0.5, 0, _G]], np.float32)
_ROUTE_AMBIENT = np.array([[0.8, 0], [0, 0.8], [0, 0], [0, 0], [0, 0.6], [0.6, 0]], np.float32)  # (L, R) noise
_ROUTE_EVENT = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0.5], [0, 0, 0], [0, 0, 0]], np.float32)  # L, R, low
_ROUTE_VOICE = np.array([0, 0, 1, 0, 0, 0], np.float32)
_ROUTE_THEME = np.array([0.8, 0.8, 0, 0, 0.3, 0.3], np.float32)
_ROUTE_HUM = np.array([1, 1, 1, 0, 0, 0], np.float32)


def _route(matrix: np.ndarray, channels: int) -> np.ndarray:
    if channels == 6:
        return matrix
    downmixed = _DOWNMIX @ matrix
    return downmixed if channels == 2 else downmixed.mean(axis=0, keepdims=True)


def _mix_title_audio(plan: dict, content: dict) -> np.ndarray:
    """The title's sound track, ``(channels, samples)`` float32 in ffmpeg's layout order."""
    sr, channels = plan["sample_rate"], plan["channels"]
    n = round(plan["duration"] * sr)
    out = np.zeros((channels, n), np.float32)
    r_amb, r_event = _route(_ROUTE_AMBIENT, channels), _route(_ROUTE_EVENT, channels)
    r_voice, r_theme = _route(_ROUTE_VOICE[:, None], channels)[:, 0], _route(_ROUTE_THEME[:, None], channels)[:, 0]
    lfe_filter = signal.butter(4, 120, "lowpass", fs=sr, output="sos")
    theme = _theme(content["theme"], sr)
    for scene in plan["scenes"]:
        rng = np.random.default_rng(scene["noise_seed"])
        a, b = round(scene["start"] * sr), round(scene["end"] * sr)
        amb = _ambient(content["locations"][scene["location"]]["ambient"], b - a, sr, rng, bass=content["eq_bass"])
        out[:, a:b] += r_amb @ amb
        if scene["character"] is not None:
            _add_voice(out, r_voice, content["character"], scene["character"]["syllables"], sr)
        for ev in scene["events"]:
            mono, pan = event_class(ev["class"]).sound(ev, sr)
            s = round(ev["start"] * sr)
            e = min(s + len(mono), n)
            left, right = pan_gains(pan)
            sources = np.stack([mono * left, mono * right, signal.sosfilt(lfe_filter, mono)])[:, : e - s]
            out[:, s:e] += r_event @ sources.astype(np.float32)
        for start in scene["themes"]:
            s = round(start * sr)
            e = min(s + len(theme), n)
            out[:, s:e] += r_theme[:, None] * theme[: e - s]
    hum_t = 2 * np.pi * content["hum_hz"] * np.arange(n) / sr
    hum = (content["hum_level"] * (np.sin(hum_t) + 0.3 * np.sin(2 * hum_t))).astype(np.float32)
    for c, gain in enumerate(_route(_ROUTE_HUM[:, None], channels)[:, 0]):
        out[c] += gain * hum
    peak = float(np.abs(out).max())
    if peak > 0.89:
        out *= np.float32(0.89 / peak)
    return out


# ---------------------------------------------------------------------------------------------
# Encoding.
# ---------------------------------------------------------------------------------------------
class _MediaWriter:
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


def _render_title(root: Path, plan: dict, content: dict) -> int:
    """Write one title (or one broken file); returns its size in bytes."""
    path = root / plan["path"]
    path.parent.mkdir(parents=True, exist_ok=True)
    if plan["broken"] == "not_media":
        path.write_text(
            "<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n"
            f"<body><h1>Not Found</h1><p>The requested title {plan['title_id']} was not found "
            "on this server.</p></body></html>\n"
        )
        return path.stat().st_size
    width, height, fps = plan["width"], plan["height"], plan["fps"]
    unit = height / 120.0
    margin = round(24 * unit)
    audio = _mix_title_audio(plan, content) if plan["audio"] else None
    writer = _MediaWriter(
        path, video_codec="libx264", width=width, height=height, fps=fps,
        audio_codec="aac" if audio is not None else None, sample_rate=plan["sample_rate"],
        channels=plan["channels"], audio_bitrate=48_000 if plan["channels"] == 2 else 128_000,
        metadata={"title": plan["title_id"], "genre": plan["genre"]},
    )
    canvases: dict[int, np.ndarray] = {}
    grade, lift = _grade_matrix(content["tint"])
    sprite = _character_sprite(content["character"], unit)
    bar = round(content["letterbox"] * height)
    sr = plan["sample_rate"]
    audio_pos = 0
    for scene in plan["scenes"]:
        loc = content["locations"][scene["location"]]
        if scene["location"] not in canvases:
            canvases[scene["location"]] = _location_canvas(loc, width, height, margin)
        canvas = canvases[scene["location"]]
        scene_ch = scene["character"]
        syllables = np.asarray(scene_ch["syllables"], dtype=np.float64).reshape(-1, 3) if scene_ch else None
        events = [(event_class(ev["class"]), ev, ev["start"], ev["start"] + ev["duration"]) for ev in scene["events"]]
        for f in range(scene["start_frame"], scene["end_frame"]):
            t = f / fps
            img = _pan_window(canvas, width, loc["pan_speed"], scene["pan_offset"], t - scene["start"]).copy()
            if scene_ch is not None:
                _draw_character(img, sprite, content["character"], scene_ch, syllables, t, unit)
            for cls, ev, begin, end in events:
                if begin <= t < end:
                    cls.draw(img, t - begin, ev)
            img = img @ grade + lift
            if content["logo"] is not None:
                _draw_logo(img, content["logo"], unit)
            if bar:
                img[:bar] = 0.0
                img[height - bar :] = 0.0
            writer.add_frame(_to_uint8(img))
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


def _render_clip_audio(clip: dict, ambient: dict, sample_rate: int, seconds: float, channels: int,
                       offset: float = 0.0, peak: float | None = None) -> np.ndarray:
    """A stand-in clip's sound, ``(channels, samples)`` float32: the event (starting at ``offset``
    seconds, panned when stereo) over the setting's ambient noise, scaled to ``peak`` when given
    (else only limited to 0.89)."""
    n = round(seconds * sample_rate)
    out = _ambient(ambient, n, sample_rate, np.random.default_rng(clip["noise_seed"]), channels=channels)
    mono, pan = event_class(clip["event"]["class"]).sound(clip["event"], sample_rate)
    start = round(offset * sample_rate)
    stop = min(start + len(mono), n)
    if channels == 2:
        left, right = pan_gains(pan)
        out[0, start:stop] += (mono * left)[: stop - start]
        out[1, start:stop] += (mono * right)[: stop - start]
    else:
        out[0, start:stop] += mono[: stop - start] * np.float32(_G)
    current = float(np.abs(out).max())
    if peak is not None or current > 0.89:
        out *= np.float32((peak if peak is not None else 0.89) / max(current, 1e-9))
    return out


def _render_video_clip(root: Path, clip: dict) -> int:
    width, height = DOWNSTREAM_SIZE
    fps, sr, channels = DOWNSTREAM_FPS, DOWNSTREAM_RATE, clip["channels"]
    path = root / clip["path"]
    # rendered _MP2_DELAY samples long and written that much early: decoded, it lines up exactly
    audio = _render_clip_audio(clip, clip["setting"]["ambient"], sr, DOWNSTREAM_SECONDS + _MP2_DELAY / sr, channels)
    audio = audio[:, _MP2_DELAY:]
    writer = _MediaWriter(path, video_codec="mpeg4", width=width, height=height, fps=fps,
                          audio_codec="mp2", sample_rate=sr, channels=channels,
                          audio_bitrate=32_000 * channels)
    unit = height / 120.0
    canvas = _location_canvas(clip["setting"], width, height, round(24 * unit))
    ev = clip["event"]
    cls = event_class(ev["class"])
    for f in range(round(DOWNSTREAM_SECONDS * fps)):
        t = f / fps
        img = _pan_window(canvas, width, clip["setting"]["pan_speed"], clip["pan_offset"], t).copy()
        if t < ev["duration"]:
            cls.draw(img, t, ev)
        writer.add_frame(_to_uint8(img))
    writer.add_audio(audio)
    writer.close()
    return path.stat().st_size


def _render_esc_clip(root: Path, clip: dict) -> int:
    path = root / clip["path"]
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = _render_clip_audio(clip, clip["ambient"], ESC_RATE, ESC_SECONDS, 1, clip["offset"], clip["peak"])[0]
    pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(ESC_RATE)
        out.writeframes(pcm.tobytes())
    return path.stat().st_size


def _run_task(root: str, kind: str, items: list, content: dict | None) -> tuple[str, int]:
    """One unit of work for a worker process: a title or a batch of downstream clips."""
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


# ---------------------------------------------------------------------------------------------
# Sidecars.
# ---------------------------------------------------------------------------------------------
def _write_meta_csv(path: Path, titles: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "title_id", "show_id", "genre"])
        for t in titles:
            writer.writerow([t["path"], t["title_id"], t["show_id"], t["genre"]])


def _write_scenes_json(path: Path, titles: list[dict]) -> None:
    out = {}
    for t in titles:
        if "scenes" not in t:
            continue
        out[t["title_id"]] = {
            "path": t["path"], "fps": t["fps"], "duration": t["duration"], "num_frames": t["num_frames"],
            "scene_starts": [s["start"] for s in t["scenes"]],
            "scene_ends": [s["end"] for s in t["scenes"]],
            "scene_start_frames": [s["start_frame"] for s in t["scenes"]],
            "locations": [s["location"] for s in t["scenes"]],
        }
    path.write_text(json.dumps({"version": 1, "titles": out}, indent=1))


def _write_ucf101_lists(root: Path, plan: dict) -> None:
    lists = root / "ucf101" / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    crlf = "\r\n"
    (lists / "classInd.txt").write_bytes(
        "".join(f"{i} {name}{crlf}" for i, name in enumerate(plan["classes"], 1)).encode())
    for s in (1, 2, 3):
        test_groups = set(_ucf_test_groups(s))
        train, test = [], []
        for clip in plan["clips"]:
            rel = clip["path"].split("UCF-101/", 1)[1]
            if clip["group"] in test_groups:
                test.append(f"{rel}{crlf}")
            else:
                train.append(f"{rel} {clip['label']}{crlf}")
        (lists / f"trainlist0{s}.txt").write_bytes("".join(train).encode())
        (lists / f"testlist0{s}.txt").write_bytes("".join(test).encode())


def _write_hmdb51_splits(root: Path, plan: dict) -> None:
    folder = root / "hmdb51" / "testTrainMulti_7030_splits"
    folder.mkdir(parents=True, exist_ok=True)
    for s, per_class in plan["splits"].items():
        for name, marks in per_class.items():
            (folder / f"{name}_test_split{s}.txt").write_text(
                "".join(f"{clip} {mark} \n" for clip, mark in marks.items()))


def _write_esc50_csv(root: Path, plan: dict) -> None:
    meta = root / "esc50" / "meta"
    meta.mkdir(parents=True, exist_ok=True)
    with open(meta / "esc50.csv", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["filename", "fold", "target", "category", "esc10", "src_file", "take"])
        for c in plan["clips"]:
            writer.writerow([c["filename"], c["fold"], c["target"], c["category"], str(c["esc10"]), c["src_file"], c["take"]])


_OWNED = ("manifest.json", "meta.csv", "scenes.json", "broken.json", "titles", "ucf101", "hmdb51", "esc50")


def _prepare_out_dir(root: Path) -> None:
    """Create ``root``; clean a previous demo corpus there; refuse to write into anything else."""
    if root.exists() and any(root.iterdir()):
        if not (root / "manifest.json").is_file():
            raise FileExistsError(
                f"demo corpus: {root} is not empty and holds no manifest.json of a previous demo corpus; "
                "refusing to write into it (choose an empty or new folder)")
        for name in _OWNED:
            target = root / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    root.mkdir(parents=True, exist_ok=True)


def generate_demo_corpus(
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    num_movies: int = 6,
    num_shows: int = 2,
    episodes_per_show: int = 3,
    title_seconds: float = 60.0,
    downstream: bool = True,
    broken: bool = True,
    workers: int | None = None,
    progress: bool = True,
) -> DemoCorpus:
    """Write the demo corpus into ``out_dir`` (see the module docstring for what and where).

    ``out_dir`` must be empty, new, or hold a previous demo corpus (which is replaced).
    ``workers`` processes render files in parallel (default: the usable CPU cores; 1 renders in
    this process).  ``progress`` shows a tqdm bar over the files.
    """
    root = Path(out_dir)
    manifest = plan_demo_corpus(seed=seed, num_movies=num_movies, num_shows=num_shows,
                                episodes_per_show=episodes_per_show, title_seconds=title_seconds,
                                downstream=downstream, broken=broken)
    _prepare_out_dir(root)
    (root / "manifest.json").write_text(json.dumps(manifest))

    tasks: list[tuple[str, list, dict | None, float]] = []  # kind, items, content, cost estimate
    for t in manifest["titles"]:
        cost = t.get("duration", 0.0) * t.get("fps", 0) * 1.0 + 1.0
        tasks.append(("title", [t], manifest["contents"][t["content"]], cost))
    if downstream:
        for name in ("ucf101", "hmdb51"):
            clips = manifest["downstream"][name]["clips"]
            for i in range(0, len(clips), 6):
                tasks.append(("video_clip", clips[i : i + 6], None, 6 * DOWNSTREAM_SECONDS * DOWNSTREAM_FPS * 2.0))
        esc = manifest["downstream"]["esc50"]["clips"]
        for i in range(0, len(esc), 10):
            tasks.append(("esc_clip", esc[i : i + 10], None, 50.0))
    tasks.sort(key=lambda task: -task[3])  # longest first keeps the pool busy to the end

    n_workers = available_cpus() if workers is None else max(1, int(workers))
    n_files = sum(len(task[1]) for task in tasks)
    bar = tqdm(total=n_files, desc="demo corpus", unit="file", disable=not progress)
    try:
        if n_workers == 1:
            for kind, items, content, _ in tasks:
                _run_task(str(root), kind, items, content)
                bar.update(len(items))
        else:
            # fork shares the already imported modules; other platforms use their safe default
            context = multiprocessing.get_context("fork") if sys.platform == "linux" else None
            with ProcessPoolExecutor(max_workers=n_workers, mp_context=context) as pool:
                futures = {pool.submit(_run_task, str(root), kind, items, content): len(items)
                           for kind, items, content, _ in tasks}
                for future in as_completed(futures):
                    future.result()
                    bar.update(futures[future])
    finally:
        bar.close()

    _write_meta_csv(root / "meta.csv", manifest["titles"])
    _write_scenes_json(root / "scenes.json", manifest["titles"])
    broken_json = None
    if broken:
        broken_json = root / "broken.json"
        broken_json.write_text(json.dumps({"version": 1, "broken": manifest["broken"]}, indent=1))
    ds = manifest["downstream"]
    if ds is not None:
        _write_ucf101_lists(root, ds["ucf101"])
        _write_hmdb51_splits(root, ds["hmdb51"])
        _write_esc50_csv(root, ds["esc50"])
    return DemoCorpus(
        root=root, manifest_json=root / "manifest.json", meta_csv=root / "meta.csv",
        scenes_json=root / "scenes.json", broken_json=broken_json,
        titles=tuple(root / t["path"] for t in manifest["titles"]),
        ucf101_root=root / "ucf101" if ds else None, hmdb51_root=root / "hmdb51" if ds else None,
        esc50_root=root / "esc50" if ds else None,
    )
