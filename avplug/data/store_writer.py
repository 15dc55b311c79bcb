"""Writing the snippet store (the layout and crash-safety contract of :mod:`avplug.data.store`).

:func:`preprocess` writes a catalog's titles (all, or one shard of a Slurm array,
:func:`shard_titles`) into a store, local processes in parallel; :func:`preprocess_title` writes one
title: one pass over its source selects, scales (:func:`store_size`) and encodes the video frames
and resamples the audio, both placed by their timestamps on one title timeline
(:class:`~avplug.data.decoders.timeline.Timeline`), then the video is verified
(:func:`verify_store_video`), scenes are detected (:func:`detect_scene_cuts`,
:func:`scene_snippets`) and ``meta.json`` is written before the title's folder is renamed into
``titles/``.  :func:`build_index` (the merge) writes
``index.json`` and ``errors.jsonl``.  :func:`check_spec` refuses to mix snippet geometries in one
store.
"""
from __future__ import annotations

import glob
import json
import logging
import math
import os
import shutil
import socket
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from av.video.frame import PictureType

from avplug.data.catalog import load_catalog, resolve_workers
from avplug.data.decoders.media import (
    TIME_EPS,
    best_stream,
    frame_time,
    open_media,
    quiet_ffmpeg,
)
from avplug.data.decoders.resampling import AudioPlacer, MonoResampler
from avplug.data.decoders.timeline import Timeline
from avplug.data.errors import MediaError, StoreError
from avplug.data.files import read_text, write_text
from avplug.data.store import (
    AUDIO_DTYPE,
    AUDIO_FILE,
    ERRORS_DIR,
    ERRORS_FILE,
    INDEX_FILE,
    META_FILE,
    SPEC_FILE,
    TITLES_DIR,
    TMP_DIR,
    VIDEO_FILE,
    StoreSpec,
    title_dir_name,
)
from avplug.resources import pool_context

logger = logging.getLogger(__name__)

# x264 settings of the store video (see avplug.data.store's docstring for why).
X264_OPTIONS = {"preset": "veryfast", "crf": "20", "tune": "fastdecode", "threads": "1"}


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
                self._timeline = timeline = Timeline()  # both streams on one clock across jumps
                audio_tb, self._video_tb = float(as_.time_base), float(vs.time_base)  # no Fraction per frame
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
                                t = None if frame.pts is None else frame.pts * audio_tb
                                t = timeline.place(as_, t, frame.samples / frame.sample_rate)
                                audio_going = placer.add(resampler.feed(frame, t))
                                if not audio_going:
                                    break
                        if self._j >= self.total_frames and not audio_going:
                            break
                except av.error.FFmpegError as exc:
                    raise MediaError(self.path, f"decoding failed at output frame {self._j} (FFmpeg: {exc})") from exc
                if audio_going:
                    placer.add(resampler.flush())
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
        return {
            "audio_coverage": placer.written / max(1, spec.audio_length(self.num_snippets)),
            "held_frames": held,
            "audio_gap_samples": placer.gap_samples,
            "audio_overlap_samples": placer.overlap_samples,
            "clock_jumps": timeline.clock_jumps,
        }

    def _scale(self, frame):
        down = frame.width * frame.height >= self.width * self.height
        return frame.reformat(
            width=self.width, height=self.height, format="yuv420p", interpolation="AREA" if down else "BICUBIC"
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
        duration = frame.duration * self._video_tb if frame.duration else 1.0 / float(vs.average_rate or self.spec.fps)
        t = self._timeline.place(vs, t, duration) - self.origin
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
            "source": {
                k: entry.get(k)
                for k in ("path", "duration_s", "start_s", "fps", "width", "height", "audio_rate", "audio_channels", "max_timestamp_jump_s")
            },
            "video": keyframes,
            "audio_coverage": round(stats["audio_coverage"], 6),  # fraction of the audio that decoded (rest: zeros)
            "held_frames": stats["held_frames"],  # final frames repeating the source's last one
            # audio placed by its timestamps: silence filling holes, samples dropped as overlapping
            "audio_gap_samples": stats["audio_gap_samples"],
            "audio_overlap_samples": stats["audio_overlap_samples"],
            "clock_jumps": stats["clock_jumps"],  # timestamp discontinuities mapped away (spliced source)
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
    """What :func:`preprocess` did: titles written, skipped (finished before) and failed (their
    status records), seconds of source written, wall seconds, and the index when it merged."""

    done: int
    skipped: int
    failed: list[dict]
    source_seconds: float
    wall_seconds: float
    index: dict | None

    @property
    def source_seconds_per_second(self) -> float:
        return self.source_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0


def _check_catalog_snippets(entries: Sequence[dict], catalog_dir: str, store_dir: str, spec: StoreSpec) -> None:
    """Raise :class:`StoreError` when the catalog counted snippets of another length than ``spec``'s."""
    for e in entries:
        if abs(float(e.get("snippet_seconds", spec.snippet_seconds)) - spec.snippet_seconds) > 1e-9:
            raise StoreError(
                store_dir,
                f"catalog {catalog_dir} counted snippets of {e['snippet_seconds']} s but the store spec has "
                f"{spec.snippet_seconds} s (DATA.SNIPPET_FRAMES / DATA.FPS): re-run tools/ingest.py with the same cfg",
            )


def _titles_to_write(store_dir: str, mine: Sequence[dict]) -> list[dict]:
    """The titles of ``mine`` not finished in the store, after removing what a crashed run of them
    left in ``STORE/.tmp/`` (other shards' temporary folders are left alone)."""
    names = {title_dir_name(e["title_id"]) for e in mine}
    for stale in glob.glob(os.path.join(store_dir, TMP_DIR, "*@*")):
        if os.path.basename(stale).split("@", 1)[0] in names:
            shutil.rmtree(stale, ignore_errors=True)
    return [e for e in mine if not os.path.isfile(os.path.join(store_dir, TITLES_DIR, title_dir_name(e["title_id"]), META_FILE))]


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
    _check_catalog_snippets(entries, catalog_dir, store_dir, spec)
    check_spec(store_dir, spec)
    mine = shard_titles(entries, shard, num_shards)
    todo = _titles_to_write(store_dir, mine)
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
