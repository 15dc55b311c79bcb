"""The snippet store: every catalog title cut into aligned, randomly readable snippets.

``tools/preprocess.py`` (:func:`preprocess`) writes, for a catalog and a store spec
(``DATA.SNIPPET_FRAMES`` F, ``DATA.FPS``, ``DATA.STORE_SHORT_SIDE``, ``DATA.AUDIO_RATE``), one
folder per title under ``STORE/titles/``.  Snippet ``m`` of a title covers ``[m L, (m + 1) L)``
seconds of its source (from the source's start time), ``L = F / FPS``:

- ``video.mp4``: H.264 at exactly FPS frames per second, short side ``STORE_SHORT_SIDE`` (aspect
  kept, even sizes), exactly ``M_n * F`` frames; frame ``j`` is the source frame displayed at
  ``j / FPS``.  A keyframe starts every snippet (GOP = F, no B-frames, no scene-cut keyframes),
  so a snippet decodes without its neighbours.  Encoded with x264's ``fastdecode`` tuning
  (no CABAC, no deblocking) since the store is decoded far more often than written.
- ``audio.npy``: mono float16 at ``AUDIO_RATE``; snippet ``m``'s ``samples_per_snippet =
  round(L * AUDIO_RATE)`` samples start at sample ``round(m * L * AUDIO_RATE)`` (``m *
  samples_per_snippet`` whenever that is an integer), so it reads straight from a memory map.
- ``meta.json``: the title's record (title_id, num_snippets, genre, show_id, scene_starts,
  width, height), where it came from, and the keyframe packet positions and timestamps found
  when the video was verified.

``scene_starts`` are PySceneDetect ``ContentDetector`` cuts on the store video, each assigned to
the snippet holding most of the new scene's frames.  ``STORE/index.json`` (written at the end of
an unsharded run or by ``--merge``) lists the spec and every finished title; it holds no
timings, so a sharded run plus a merge writes the same index as a local run.

Crash safety: a title is written into ``STORE/.tmp/`` and renamed into ``titles/`` only when
complete, so a folder under ``titles/`` is always whole and a rerun skips it.  A title that fails
is recorded in ``STORE/errors/`` (collected into ``errors.jsonl`` by the merge) and never stops
the run.

Readers use :class:`SnippetStore`.
"""
from __future__ import annotations

import collections
import glob
import hashlib
import json
import logging
import math
import os
import re
import shutil
import socket
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from fractions import Fraction

import av
import numpy as np
import torch
from av.video.frame import PictureType
from iopath.common.file_io import g_pathmgr

from avplug.data.catalog import load_catalog, resolve_workers
from avplug.data.decoders import get_default_decoder, read_clips
from avplug.data.decoders.media import (
    TIME_EPS,
    best_stream,
    frame_time,
    local_path,
    open_media,
    quiet_ffmpeg,
    reformatter,
)
from avplug.data.decoders.resampling import AudioPlacer, MonoResampler
from avplug.data.errors import MediaError, StoreError
from avplug.data.files import join_path, read_text, write_text
from avplug.data.index import TitleRecord
from avplug.resources import pool_context
from registry import DECODERS

logger = logging.getLogger(__name__)

STORE_VERSION = 1
INDEX_FILE = "index.json"
SPEC_FILE = "store.json"
ERRORS_FILE = "errors.jsonl"
TITLES_DIR = "titles"
ERRORS_DIR = "errors"
TMP_DIR = ".tmp"
VIDEO_FILE = "video.mp4"
AUDIO_FILE = "audio.npy"
META_FILE = "meta.json"
AUDIO_DTYPE = "float16"
# x264 settings of the store video (see the module docstring for why).
X264_OPTIONS = {"preset": "veryfast", "crf": "20", "tune": "fastdecode", "threads": "1"}


# ---------------------------------------------------------------------------------------------
# The spec: what every title of a store shares
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StoreSpec:
    """Snippet geometry of a store: F frames at ``fps``, video short side, audio rate."""

    snippet_frames: int
    fps: float
    short_side: int
    audio_rate: int

    @classmethod
    def from_cfg(cls, cfg) -> StoreSpec:
        d = cfg.DATA
        return cls(int(d.SNIPPET_FRAMES), float(d.FPS), int(d.STORE_SHORT_SIDE), int(d.AUDIO_RATE))

    @property
    def snippet_seconds(self) -> float:
        return self.snippet_frames / self.fps

    @property
    def samples_per_snippet(self) -> int:
        return round(self.snippet_seconds * self.audio_rate)

    def audio_start(self, m: int) -> int:
        """Index of snippet ``m``'s first audio sample in ``audio.npy``."""
        return round(m * self.snippet_frames * self.audio_rate / self.fps)

    def audio_length(self, num_snippets: int) -> int:
        return self.audio_start(num_snippets - 1) + self.samples_per_snippet if num_snippets else 0

    def to_json(self) -> dict:
        return {
            "version": STORE_VERSION,
            **asdict(self),
            "snippet_seconds": self.snippet_seconds,
            "samples_per_snippet": self.samples_per_snippet,
            "audio_dtype": AUDIO_DTYPE,
            "video_codec": "h264",
        }


def title_dir_name(title_id: str) -> str:
    """A file-system-safe, collision-free folder name for ``title_id``."""
    if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}", title_id):
        return title_id
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", title_id).strip("._")[:60] or "title"
    return f"{slug}-{hashlib.sha1(title_id.encode()).hexdigest()[:10]}"


def store_size(width: int, height: int, short_side: int, sample_aspect_ratio: float = 1.0) -> tuple[int, int]:
    """(width, height) with the short side ``short_side`` and the display aspect of the source,
    both rounded to even numbers (H.264 4:2:0 needs them)."""

    def even(x: float) -> int:  # nearest even number, halves up (an odd short side grows by one)
        return max(2, math.floor(x / 2.0 + 0.5) * 2)

    display_w = width * (sample_aspect_ratio or 1.0)
    if display_w <= height:
        return even(short_side), even(short_side * height / display_w)
    return even(short_side * display_w / height), even(short_side)


def scene_snippets(cut_frames: Sequence[int], snippet_frames: int, num_snippets: int) -> tuple[int, ...]:
    """Snippet indices where scenes start, from the store frames where cuts happen.

    A cut at frame c starts its scene in the snippet that holds most of the new scene's frames:
    ``(c + (F - 1) // 2) // F``.  Always starts with 0, sorted, unique, below ``num_snippets``.
    """
    starts = {0}
    for c in cut_frames:
        s = (int(c) + (snippet_frames - 1) // 2) // snippet_frames
        if 0 < s < num_snippets:
            starts.add(s)
    return tuple(sorted(starts))


def detect_scene_cuts(video_path: str, min_scene_frames: int) -> list[int]:
    """Frame numbers of PySceneDetect ContentDetector cuts in ``video_path`` (first scene excluded)."""
    import scenedetect

    scenes = scenedetect.detect(video_path, scenedetect.ContentDetector(min_scene_len=min_scene_frames), backend="pyav")
    return [start.frame_num for start, _ in scenes[1:]]


# ---------------------------------------------------------------------------------------------
# Writing one title
# ---------------------------------------------------------------------------------------------
def _encode_store_video(path: str, fps: float, width: int, height: int, gop: int):
    """An mp4 writer and its H.264 stream: constant ``fps``, an IDR frame every ``gop`` frames."""
    container = av.open(path, "w", options={"movflags": "+faststart"})
    rate = Fraction(fps).limit_denominator(100000)
    stream = container.add_stream("libx264", rate=rate)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.codec_context.time_base = 1 / rate
    stream.options = {
        **X264_OPTIONS,
        "g": str(gop),
        "keyint_min": str(gop),
        "sc_threshold": "0",
        "bf": "0",
        "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:open-gop=0",
    }
    return container, stream


class _TitleWriter:
    """One pass over a source: selects, scales and encodes video frames; resamples audio."""

    def __init__(self, entry: dict, spec: StoreSpec, out_dir: str, decode_threads: int = 1) -> None:
        self.entry, self.spec, self.out_dir = entry, spec, out_dir
        self.decode_threads = max(1, int(decode_threads))
        self.path = entry["path"]
        self.num_snippets = math.floor(float(entry["duration_s"]) / spec.snippet_seconds + 1e-9)
        if self.num_snippets < 1:
            raise MediaError(self.path, f"shorter than one snippet ({entry['duration_s']} s < {spec.snippet_seconds} s)")
        self.origin = float(entry.get("start_s", 0.0))
        self.total_frames = self.num_snippets * spec.snippet_frames
        self.width, self.height = store_size(
            int(entry["width"]), int(entry["height"]), spec.short_side, float(entry.get("sample_aspect_ratio", 1.0))
        )

    def write(self) -> dict:
        spec = self.spec
        video_path = os.path.join(self.out_dir, VIDEO_FILE)
        audio = np.lib.format.open_memmap(
            os.path.join(self.out_dir, AUDIO_FILE), mode="w+", dtype=AUDIO_DTYPE, shape=(spec.audio_length(self.num_snippets),)
        )
        out, ostream = _encode_store_video(video_path, spec.fps, self.width, self.height, spec.snippet_frames)
        try:
            with open_media(self.path) as src:
                vs = best_stream(src, "video", self.path)
                as_ = best_stream(src, "audio", self.path)
                if self.decode_threads > 1:
                    vs.codec_context.thread_type = "AUTO"
                vs.codec_context.thread_count = self.decode_threads
                resampler = MonoResampler(spec.audio_rate)
                placer = AudioPlacer(audio, self.origin, spec.audio_rate)
                self._j = 0  # next output frame
                self._cur = None  # [source frame, its scaled copy or None]: the frame displayed now
                audio_going = True
                try:
                    for packet in src.demux(vs, as_):
                        if packet.stream is vs:
                            if self._j >= self.total_frames:
                                if not audio_going:
                                    break
                                continue
                            for frame in packet.decode():
                                self._video_frame(frame, vs, out, ostream)
                        elif audio_going:
                            for frame in packet.decode():
                                chunks = resampler.feed(frame, as_)
                                audio_going = placer.add(resampler.first_time, chunks)
                                if not audio_going:
                                    break
                        if self._j >= self.total_frames and not audio_going:
                            break
                except av.error.FFmpegError as exc:
                    raise MediaError(self.path, f"decoding failed at output frame {self._j} (FFmpeg: {exc})") from exc
                if audio_going and resampler.first_time is not None:
                    placer.add(resampler.first_time, resampler.flush())
                if self._cur is None:
                    raise MediaError(self.path, "no video frame decodes")
                held = self.total_frames - self._j
                while self._j < self.total_frames:  # the source ended a little early: hold the last frame
                    self._emit(self._shown(), out, ostream)
                if placer.written == 0:
                    raise MediaError(self.path, "no audio sample decodes")
            for packet in ostream.encode():
                out.mux(packet)
        finally:
            out.close()
            audio.flush()
            del audio
        return {"audio_coverage": placer.written / max(1, spec.audio_length(self.num_snippets)), "held_frames": held}

    def _scale(self, frame):
        down = frame.width * frame.height >= self.width * self.height
        return reformatter().reformat(
            frame, width=self.width, height=self.height, format="yuv420p", interpolation="AREA" if down else "BICUBIC",
            threads=1,
        )

    def _emit(self, scaled, out, ostream) -> None:
        scaled.pts = self._j
        # an IDR frame starts every snippet; elsewhere x264 decides (never from the source's types)
        scaled.pict_type = PictureType.I if self._j % self.spec.snippet_frames == 0 else PictureType.NONE
        scaled.time_base = ostream.codec_context.time_base
        for packet in ostream.encode(scaled):
            out.mux(packet)
        self._j += 1

    def _video_frame(self, frame, vs, out, ostream) -> None:
        t = frame_time(frame, vs)
        if t is None:
            return
        t -= self.origin
        spec = self.spec
        # every output frame whose time precedes this frame shows the frame before it (the first
        # frame, if none came before); only frames that are shown get scaled
        while self._j < self.total_frames and t > self._j / spec.fps + TIME_EPS:
            if self._cur is None:
                self._cur = [frame, None]
            self._emit(self._shown(), out, ostream)
        if self._j < self.total_frames:
            self._cur = [frame, None]

    def _shown(self):
        if self._cur[1] is None:
            self._cur[1] = self._scale(self._cur[0])
        return self._cur[1]


def verify_store_video(path: str, expected_frames: int, gop: int) -> dict:
    """Demux ``path`` (no decoding) and check its frame count and that exactly every ``gop``-th
    frame is a keyframe; returns the keyframes' byte positions and timestamps."""
    positions, pts = [], []
    with open_media(path) as c:
        vs = c.streams.video[0]
        n = 0
        packets = sorted((p for p in c.demux(vs) if p.size), key=lambda p: p.pts)
        for i, p in enumerate(packets):
            if p.is_keyframe != (i % gop == 0):
                raise MediaError(path, f"frame {i} is {'a' if p.is_keyframe else 'not a'} keyframe; the store needs one every {gop} frames")
            if p.is_keyframe:
                positions.append(int(p.pos))
                pts.append(int(p.pts))
            n += 1
        time_base = str(vs.time_base)
    if n != expected_frames:
        raise MediaError(path, f"holds {n} frames; expected {expected_frames}")
    return {"time_base": time_base, "keyframe_pts": pts, "keyframe_pos": positions}


def preprocess_title(entry: dict, store_dir: str, spec: StoreSpec, decode_threads: int = 1) -> dict:
    """Write one catalog title into ``store_dir`` (decoding the source with ``decode_threads``
    FFmpeg threads); returns its status.

    ``{"title_id", "status": "done" | "skipped" | "failed", "seconds": source seconds,
    "reason"}``.  Never raises for a broken title: the failure is recorded in
    ``store_dir/errors/`` instead.
    """
    quiet_ffmpeg()
    title_id = entry["title_id"]
    name = title_dir_name(title_id)
    final = os.path.join(store_dir, TITLES_DIR, name)
    error_file = os.path.join(store_dir, ERRORS_DIR, name + ".json")
    seconds = float(entry.get("duration_s", 0.0))
    if os.path.isfile(os.path.join(final, META_FILE)):
        return {"title_id": title_id, "status": "skipped", "seconds": seconds}
    tmp = os.path.join(store_dir, TMP_DIR, f"{name}@{socket.gethostname()}@{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    t0 = time.time()
    try:
        writer = _TitleWriter(entry, spec, tmp, decode_threads)
        stats = writer.write()
        video = os.path.join(tmp, VIDEO_FILE)
        keyframes = verify_store_video(video, writer.total_frames, spec.snippet_frames)
        cuts = detect_scene_cuts(video, spec.snippet_frames)
        meta = {
            "title_id": title_id,
            "dir": name,
            "num_snippets": writer.num_snippets,
            "genre": entry.get("genre", ""),
            "show_id": entry.get("show_id", ""),
            "scene_starts": list(scene_snippets(cuts, spec.snippet_frames, writer.num_snippets)),
            "width": writer.width,
            "height": writer.height,
            "num_frames": writer.total_frames,
            "num_audio_samples": spec.audio_length(writer.num_snippets),
            "scene_cut_frames": cuts,
            "source": {k: entry.get(k) for k in ("path", "duration_s", "start_s", "fps", "width", "height", "audio_rate", "audio_channels")},
            "video": keyframes,
            "audio_coverage": round(stats["audio_coverage"], 6),  # fraction of the audio that decoded (rest: zeros)
            "held_frames": stats["held_frames"],  # final frames repeating the source's last one
            "spec": spec.to_json(),
            "preprocess_seconds": round(time.time() - t0, 3),
        }
        write_text(os.path.join(tmp, META_FILE), json.dumps(meta, indent=1) + "\n")
        os.makedirs(os.path.dirname(final), exist_ok=True)
        try:
            os.rename(tmp, final)
        except OSError:
            if not os.path.isfile(os.path.join(final, META_FILE)):  # not a concurrent finish: real error
                raise
            shutil.rmtree(tmp, ignore_errors=True)
        if os.path.exists(error_file):
            os.remove(error_file)
        return {"title_id": title_id, "status": "done", "seconds": seconds}
    except Exception as exc:  # noqa: BLE001  (a broken title is reported, never fatal)
        shutil.rmtree(tmp, ignore_errors=True)
        reason = exc.reason if isinstance(exc, MediaError) else f"{type(exc).__name__}: {exc}"
        os.makedirs(os.path.dirname(error_file), exist_ok=True)
        write_text(error_file, json.dumps({"title_id": title_id, "path": entry.get("path", ""), "reason": reason}) + "\n")
        return {"title_id": title_id, "status": "failed", "seconds": seconds, "reason": reason}


# ---------------------------------------------------------------------------------------------
# The whole store
# ---------------------------------------------------------------------------------------------
def shard_titles(entries: Sequence[dict], shard: int, num_shards: int) -> list[dict]:
    """Shard ``shard`` of ``num_shards`` of the catalog: titles dealt longest first to the least
    loaded shard (ties: lowest shard, then title_id), so shards take about equal time."""
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise ValueError(f"shard {shard} of {num_shards}: need 0 <= shard < num_shards")
    load = [0.0] * num_shards
    mine = []
    for e in sorted(entries, key=lambda e: (-float(e["duration_s"]), e["title_id"])):
        k = min(range(num_shards), key=lambda i: (load[i], i))
        load[k] += float(e["duration_s"])
        if k == shard:
            mine.append(e)
    return sorted(mine, key=lambda e: e["title_id"])


def check_spec(store_dir: str, spec: StoreSpec) -> None:
    """Record ``spec`` in a new store (``store.json``), or raise :class:`StoreError` if the store
    was started with another one (mixing snippet geometries would corrupt it)."""
    path = os.path.join(store_dir, SPEC_FILE)
    want = spec.to_json()
    if os.path.isfile(path):
        have = json.loads(read_text(path))
        if have != want:
            diff = {k: (have.get(k), want[k]) for k in want if have.get(k) != want[k]}
            raise StoreError(store_dir, f"was built with another spec {diff} (store, cfg): use a new --out or the store's cfg")
        return
    os.makedirs(store_dir, exist_ok=True)
    write_text(path, json.dumps(want, indent=1) + "\n")


@dataclass
class PreprocessSummary:
    done: int
    skipped: int
    failed: list[dict]
    source_seconds: float
    wall_seconds: float
    index: dict | None

    @property
    def source_seconds_per_second(self) -> float:
        return self.source_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0


def preprocess(
    catalog_dir: str,
    store_dir: str,
    spec: StoreSpec,
    *,
    workers: int = 0,
    shard: int = 0,
    num_shards: int = 1,
    merge: bool | None = None,
    progress: bool = True,
) -> PreprocessSummary:
    """Write the catalog's titles (``shard`` of ``num_shards``) into ``store_dir``.

    Finished titles are skipped; broken ones are recorded and skipped.  ``merge`` (default:
    only for an unsharded run) writes ``index.json`` afterwards.  ``workers``: local processes
    (0: every core).  The store must be on a POSIX file system (titles are renamed into place).
    """
    from tqdm import tqdm

    if "://" in store_dir:
        raise StoreError(store_dir, "must be a local or network-mounted folder (titles are renamed into place)")
    entries = load_catalog(catalog_dir)
    for e in entries:
        if abs(float(e.get("snippet_seconds", spec.snippet_seconds)) - spec.snippet_seconds) > 1e-9:
            raise StoreError(
                store_dir,
                f"catalog {catalog_dir} counted snippets of {e['snippet_seconds']} s but the store spec has "
                f"{spec.snippet_seconds} s (DATA.SNIPPET_FRAMES / DATA.FPS): re-run tools/ingest.py with the same cfg",
            )
    check_spec(store_dir, spec)
    mine = shard_titles(entries, shard, num_shards)
    names = {title_dir_name(e["title_id"]) for e in mine}
    for stale in glob.glob(os.path.join(store_dir, TMP_DIR, "*@*")):  # leftovers of a crashed run of this shard
        if os.path.basename(stale).split("@", 1)[0] in names:
            shutil.rmtree(stale, ignore_errors=True)
    todo = [e for e in mine if not os.path.isfile(os.path.join(store_dir, TITLES_DIR, title_dir_name(e["title_id"]), META_FILE))]
    skipped = len(mine) - len(todo)
    workers = resolve_workers(workers)
    threads = max(1, resolve_workers(0) // max(1, min(workers, len(todo) or 1)))  # source decoding threads per title
    logger.info(
        "preprocess: shard %d/%d: %d titles, %d already done, %d to write with %d workers -> %s",
        shard, num_shards, len(mine), skipped, len(todo), workers, store_dir,
    )  # fmt: skip
    t0 = time.time()
    done, failed, seconds = 0, [], 0.0
    bar = tqdm(total=len(todo), desc="preprocess", unit="title", disable=not progress, dynamic_ncols=True)

    def account(result: dict) -> None:
        nonlocal done, seconds
        if result["status"] == "failed":
            failed.append(result)
            logger.warning("preprocess: %s failed: %s", result["title_id"], result["reason"])
        else:
            done += result["status"] == "done"
            seconds += result["seconds"]
        elapsed = max(time.time() - t0, 1e-9)
        bar.set_postfix(src_s_per_s=f"{seconds / elapsed:.1f}", failed=len(failed))
        bar.update()

    try:
        if workers <= 1 or len(todo) <= 1:
            for e in todo:
                account(preprocess_title(e, store_dir, spec, threads))
        else:
            with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=pool_context()) as pool:
                futures = [pool.submit(preprocess_title, e, store_dir, spec, threads) for e in todo]
                for fut in as_completed(futures):
                    account(fut.result())
    finally:
        bar.close()
    wall = time.time() - t0
    index = None
    if merge is None:
        merge = num_shards == 1
    if merge:
        index = build_index(store_dir, catalog_dir)
    summary = PreprocessSummary(done=done, skipped=skipped, failed=failed, source_seconds=seconds, wall_seconds=wall, index=index)
    logger.info(
        "preprocess: %d written, %d skipped, %d failed; %.1f s of source in %.1f s (%.1f s/s)",
        done, skipped, len(failed), seconds, wall, summary.source_seconds_per_second,
    )  # fmt: skip
    return summary


def build_index(store_dir: str, catalog_dir: str) -> dict:
    """Write ``index.json`` (spec + every finished title of the catalog, sorted by title_id) and
    ``errors.jsonl`` (titles that failed); warns about titles not processed yet."""
    spec_path = os.path.join(store_dir, SPEC_FILE)
    if not os.path.isfile(spec_path):
        raise StoreError(store_dir, f"no {SPEC_FILE}: nothing was preprocessed into it yet")
    spec = json.loads(read_text(spec_path))
    titles, errors, pending = [], [], []
    for e in sorted(load_catalog(catalog_dir), key=lambda e: e["title_id"]):
        name = title_dir_name(e["title_id"])
        meta_path = os.path.join(store_dir, TITLES_DIR, name, META_FILE)
        err_path = os.path.join(store_dir, ERRORS_DIR, name + ".json")
        if os.path.isfile(meta_path):
            m = json.loads(read_text(meta_path))
            titles.append({k: m[k] for k in ("title_id", "dir", "num_snippets", "genre", "show_id", "scene_starts", "width", "height")})
        elif os.path.isfile(err_path):
            errors.append(json.loads(read_text(err_path)))
        else:
            pending.append(e["title_id"])
    index = {**spec, "titles": titles}
    write_text(os.path.join(store_dir, INDEX_FILE), json.dumps(index, indent=1) + "\n")
    write_text(os.path.join(store_dir, ERRORS_FILE), "".join(json.dumps(r) + "\n" for r in errors))
    if pending:
        logger.warning("merge: %d catalog titles are not processed yet (e.g. %s); run the missing shards and merge again", len(pending), ", ".join(pending[:5]))
    logger.info("merge: index of %d titles (%d snippets), %d failed -> %s", len(titles), sum(t["num_snippets"] for t in titles), len(errors), store_dir)
    return index


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------
class SnippetStore:
    """Read-only access to a store written by :func:`preprocess` (any iopath backend).

    ``titles`` lists every title as :class:`TitleRecord`; ``snippet_frames``, ``fps``,
    ``short_side``, ``audio_rate``, ``samples_per_snippet`` and ``snippet_seconds`` describe the
    snippets.  Reading a title or snippet the store lacks raises :class:`StoreError` naming the
    store and the title.  Picklable (caches are dropped), so it can go to DataLoader workers.
    """

    AUDIO_CACHE = 32  # memory maps kept open

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = str(root)
        index_path = join_path(self.root, INDEX_FILE)
        if not g_pathmgr.exists(index_path):
            raise StoreError(self.root, f"no {INDEX_FILE}: run tools/preprocess.py --out {self.root} (or --merge after a sharded run)")
        data = json.loads(read_text(index_path))
        if data.get("version") != STORE_VERSION:
            raise StoreError(self.root, f"store version {data.get('version')!r}; this avplug reads version {STORE_VERSION}")
        self.spec = StoreSpec(int(data["snippet_frames"]), float(data["fps"]), int(data["short_side"]), int(data["audio_rate"]))
        self.snippet_frames = self.spec.snippet_frames
        self.fps = self.spec.fps
        self.short_side = self.spec.short_side
        self.audio_rate = self.spec.audio_rate
        self.samples_per_snippet = self.spec.samples_per_snippet
        self.snippet_seconds = self.spec.snippet_seconds
        self._entries = {t["title_id"]: t for t in data["titles"]}
        self.titles: list[TitleRecord] = [
            TitleRecord(
                title_id=t["title_id"],
                num_snippets=int(t["num_snippets"]),
                genre=t.get("genre", ""),
                show_id=t.get("show_id", ""),
                scene_starts=tuple(t.get("scene_starts") or (0,)),
            )
            for t in data["titles"]
        ]
        self._records = {t.title_id: t for t in self.titles}
        self._reset_caches()

    def _reset_caches(self) -> None:
        self._audio: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
        self._decoders: dict = {}

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_audio", None)
        state.pop("_decoders", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._reset_caches()

    def __len__(self) -> int:
        return len(self.titles)

    def __contains__(self, title_id: str) -> bool:
        return title_id in self._entries

    def __repr__(self) -> str:
        return f"SnippetStore({self.root!r}: {len(self.titles)} titles, {self.snippet_frames} frames at {self.fps} fps)"

    def title(self, title_id: str) -> TitleRecord:
        self._entry(title_id)
        return self._records[title_id]

    def _entry(self, title_id: str) -> dict:
        try:
            return self._entries[title_id]
        except KeyError:
            raise StoreError(self.root, f"has no title {title_id!r} ({len(self._entries)} titles)") from None

    def _path(self, title_id: str, name: str) -> str:
        return join_path(join_path(join_path(self.root, TITLES_DIR), self._entry(title_id)["dir"]), name)

    def video_path(self, title_id: str) -> str:
        return self._path(title_id, VIDEO_FILE)

    def audio_path(self, title_id: str) -> str:
        return self._path(title_id, AUDIO_FILE)

    def _indices(self, title_id: str, snippet_indices: Sequence[int]) -> list[int]:
        n = int(self._entry(title_id)["num_snippets"])
        idx = [int(i) for i in snippet_indices]
        bad = [i for i in idx if not 0 <= i < n]
        if bad:
            raise StoreError(self.root, f"title {title_id!r} has snippets 0..{n - 1}; asked for {bad}")
        return idx

    def _decoder(self, decoder):
        if decoder is not None and not isinstance(decoder, str):
            return decoder
        key = decoder or ""
        if key not in self._decoders:
            self._decoders[key] = DECODERS.get(key)() if key else get_default_decoder()
        return self._decoders[key]

    def read_video(self, title_id: str, snippet_indices: Sequence[int], decoder=None) -> torch.Tensor:
        """``uint8 [len, snippet_frames, H, W, 3]``: the frames of the given snippets (in the
        order asked), from one open of the title's file.  ``decoder``: a DECODERS name, a
        decoder object, or None for :func:`~avplug.data.decoders.get_default_decoder`."""
        idx = self._indices(title_id, snippet_indices)
        e = self._entry(title_id)
        if not idx:
            return torch.empty((0, self.snippet_frames, e["height"], e["width"], 3), dtype=torch.uint8)
        dec = self._decoder(decoder)
        path = self.video_path(title_id)
        starts = [i * self.snippet_frames / self.fps for i in idx]
        return read_clips(dec, path, starts, self.snippet_frames, self.fps)

    def _audio_map(self, title_id: str) -> np.ndarray:
        arr = self._audio.get(title_id)
        if arr is None:
            path = self.audio_path(title_id)
            try:
                arr = np.load(local_path(path), mmap_mode="r")
            except (OSError, ValueError, MediaError) as exc:
                raise StoreError(self.root, f"title {title_id!r}: cannot map {path} ({exc})") from exc
            self._audio[title_id] = arr
            if len(self._audio) > self.AUDIO_CACHE:
                self._audio.popitem(last=False)
        else:
            self._audio.move_to_end(title_id)
        return arr

    def read_audio(self, title_id: str, snippet_indices: Sequence[int]) -> torch.Tensor:
        """``float32 [len, samples_per_snippet]``: the mono audio of the given snippets."""
        idx = self._indices(title_id, snippet_indices)
        arr = self._audio_map(title_id)
        spp = self.samples_per_snippet
        out = np.empty((len(idx), spp), np.float32)
        for row, i in enumerate(idx):
            a = self.spec.audio_start(i)
            out[row] = arr[a : a + spp]
        return torch.from_numpy(out)
