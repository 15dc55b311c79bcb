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
store.  A title is written while its writer holds the title's lock (:func:`try_lock`); a rerun
rewrites finished titles whose files no longer match ``meta.json`` and removes only the temporary
folders of dead writers (:func:`sweep_temps`).  The audio's disk space is reserved before it is
written (:func:`allocate_npy`), so a full disk is an error, never a SIGBUS.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import glob
import json
import logging
import math
import os
import shutil
import socket
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
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
from avplug.data.errors import MediaError, StoreError, write_failure
from avplug.data.files import read_text, write_text
from avplug.data.store import (
    AUDIO_DTYPE,
    AUDIO_FILE,
    ERRORS_DIR,
    ERRORS_FILE,
    HASH_CHUNK,
    INDEX_FILE,
    META_FILE,
    SPEC_FILE,
    TITLES_DIR,
    TMP_DIR,
    VIDEO_FILE,
    StoreSpec,
    file_record,
    nonfinite_audio,
    title_dir_name,
    title_problem,
)
from avplug.errors import is_disk_full
from avplug.resources import process_pool

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


def allocate_npy(path: str, dtype: str, length: int) -> np.memmap:
    """A zero-filled 1-d ``.npy`` file of ``length`` items, mapped for writing, its disk space
    reserved up front: a full disk is an ``OSError`` here, never a SIGBUS when a page of a sparse
    file is written later."""
    dtype = np.dtype(dtype)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (length,)})
        offset = f.tell()
        total = offset + length * dtype.itemsize
        try:
            os.posix_fallocate(f.fileno(), 0, total)
        except (AttributeError, OSError) as exc:  # no fallocate here: write the zeros
            if isinstance(exc, OSError) and exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
            zeros = bytes(HASH_CHUNK)
            for _ in range(0, total - offset, len(zeros)):
                f.write(zeros[: total - f.tell()])
    return np.memmap(path, dtype=dtype, mode="r+", offset=offset, shape=(length,))


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
        audio = allocate_npy(os.path.join(self.out_dir, AUDIO_FILE), AUDIO_DTYPE, spec.audio_length(self.num_snippets))
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


def preprocess_title(entry: dict, store_dir: str, spec: StoreSpec, decode_threads: int = 1, redo: bool = False) -> dict:
    """Write one catalog title into ``store_dir`` (decoding the source with ``decode_threads``
    FFmpeg threads); returns its status.

    ``{"title_id", "status": "done" | "skipped" | "busy" | "failed", "seconds": source seconds,
    "reason"}``: "skipped" when the title is finished and its files match ``meta.json`` (sizes;
    ``redo`` rewrites it anyway), "busy" when another process holds its lock.  Never raises for
    a broken title: the failure is recorded in ``store_dir/errors/`` instead.  A full disk raises
    :class:`StoreError` after removing the unfinished title.
    """
    quiet_ffmpeg()
    title_id = entry["title_id"]
    name = title_dir_name(title_id)
    final = os.path.join(store_dir, TITLES_DIR, name)
    status = {"title_id": title_id, "seconds": float(entry.get("duration_s", 0.0))}
    lock = store_lock(store_dir, _lock_path(store_dir, name))
    if lock is None:
        return {**status, "status": "busy"}
    tmp = os.path.join(store_dir, TMP_DIR, f"{name}@{socket.gethostname()}@{os.getpid()}")
    try:
        if not redo and os.path.isfile(os.path.join(final, META_FILE)) and title_problem(final, full=False) is None:
            return {**status, "status": "skipped"}  # finished meanwhile by another run
        _remove_temps(store_dir, name)  # left by a dead writer: this one holds the title's lock
        os.makedirs(tmp)
        _write_title(entry, spec, tmp, decode_threads)
        if os.path.exists(final):  # a damaged copy being replaced
            shutil.rmtree(final)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.rename(tmp, final)
        with contextlib.suppress(FileNotFoundError):
            os.remove(_error_path(store_dir, name))
        return {**status, "status": "done"}
    except Exception as exc:  # noqa: BLE001  (a broken title is reported, never fatal)
        shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(exc):
            raise write_error(store_dir, exc, f"writing title {title_id!r}") from exc
        reason = exc.reason if isinstance(exc, MediaError) else f"{type(exc).__name__}: {exc}"
        _record_failure(store_dir, name, {"title_id": title_id, "path": entry.get("path", ""), "reason": reason})
        return {**status, "status": "failed", "reason": reason}
    finally:
        unlock(_lock_path(store_dir, name), lock)


def write_error(store_dir: str, exc: OSError, doing: str) -> StoreError:
    """The one-line :class:`StoreError` for a failed write into a store: ``no space left on
    STORE while DOING`` and the fix (free space, or fix the folder, and rerun)."""
    fix = "free space" if is_disk_full(exc) else "fix the folder"
    return StoreError(store_dir, f"{write_failure(exc, store_dir)} while {doing}: {fix} and rerun tools/preprocess.py "
                                 "(finished titles are kept; unfinished ones were removed)")  # fmt: skip


def _write_title(entry: dict, spec: StoreSpec, out_dir: str, decode_threads: int) -> None:
    """Write a title's video, audio and (last) ``meta.json`` into ``out_dir``; raises
    :class:`MediaError` when the source cannot make a valid title (non-finite audio included)."""
    t0 = time.time()
    writer = _TitleWriter(entry, spec, out_dir, decode_threads)
    stats = writer.write()
    video, audio = os.path.join(out_dir, VIDEO_FILE), os.path.join(out_dir, AUDIO_FILE)
    bad_audio = nonfinite_audio(audio, spec.samples_per_snippet)
    if bad_audio:
        raise MediaError(entry["path"], f"decodes to {bad_audio}: fix or re-encode the source's audio")
    keyframes = verify_store_video(video, writer.total_frames, spec.snippet_frames)
    cuts = detect_scene_cuts(video, spec.snippet_frames)
    meta = {
        "title_id": entry["title_id"],
        "dir": title_dir_name(entry["title_id"]),
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
        "files": {name: file_record(os.path.join(out_dir, name)) for name in (VIDEO_FILE, AUDIO_FILE)},
        "spec": spec.to_json(),
        "preprocess_seconds": round(time.time() - t0, 3),
    }
    write_text(os.path.join(out_dir, META_FILE), json.dumps(meta, indent=1) + "\n")


def _error_path(store_dir: str, name: str) -> str:
    return os.path.join(store_dir, ERRORS_DIR, name + ".json")


def _record_failure(store_dir: str, name: str, record: dict) -> None:
    """Write a failed title's record into ``errors/``; a full disk is a :class:`StoreError`."""
    try:
        os.makedirs(os.path.join(store_dir, ERRORS_DIR), exist_ok=True)
        write_text(_error_path(store_dir, name), json.dumps(record) + "\n")
    except OSError as exc:
        raise write_error(store_dir, exc, f"recording why title {record['title_id']!r} failed ({record['reason']})") from exc


# ---------------------------------------------------------------------------------------------
# Locks: one writer per title, across processes, runs and hosts sharing the store
# ---------------------------------------------------------------------------------------------
def try_lock(path: str, *, wait: bool = False) -> int | None:
    """An exclusive ``flock`` on the file ``path`` (created if needed): its file descriptor
    (release it with :func:`unlock`), or None when another process holds it (``wait``: block
    until it is free).  On a file system without ``flock`` the run goes on unlocked, with a warning."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                os.close(fd)
                raise
            _warn_no_locks(path, exc)
            return fd
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        os.close(fd)  # its holder removed the file while this process waited: lock the new one


def store_lock(store_dir: str, path: str, *, wait: bool = False) -> int | None:
    """:func:`try_lock` of a lock file of ``store_dir``; failing to create it is a :class:`StoreError`."""
    try:
        return try_lock(path, wait=wait)
    except OSError as exc:
        raise write_error(store_dir, exc, f"creating the lock file {path}") from exc


def unlock(path: str, fd: int) -> None:
    """Release a lock from :func:`try_lock`, removing its file (while still holding it)."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
    os.close(fd)


@functools.cache
def _warn_no_locks(path: str, exc: OSError) -> None:
    logger.warning("preprocess: %s has no file locks (%s): never run two preprocess runs on it at once", os.path.dirname(path), exc.strerror)


def _lock_path(store_dir: str, name: str) -> str:
    return os.path.join(store_dir, TMP_DIR, name + ".lock")


def _remove_temps(store_dir: str, name: str) -> None:
    """Remove the temporary folders of title ``name`` (call with its lock held)."""
    for stale in glob.glob(os.path.join(glob.escape(os.path.join(store_dir, TMP_DIR)), glob.escape(name) + "@*")):
        shutil.rmtree(stale, ignore_errors=True)


def sweep_temps(store_dir: str) -> int:
    """Remove the temporary folders of every title whose lock is free (their writer died);
    returns how many titles had some.  Live work of other runs is left alone."""
    swept = set()
    for stale in glob.glob(os.path.join(glob.escape(os.path.join(store_dir, TMP_DIR)), "*@*")):
        name = os.path.basename(stale).split("@", 1)[0]
        if name in swept or not os.path.isdir(stale):
            continue
        lock = store_lock(store_dir, _lock_path(store_dir, name))
        if lock is not None:
            _remove_temps(store_dir, name)
            unlock(_lock_path(store_dir, name), lock)
            swept.add(name)
    return len(swept)


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
    try:
        os.makedirs(store_dir, exist_ok=True)
        write_text(path, json.dumps(want, indent=1) + "\n")
    except OSError as exc:
        raise write_error(store_dir, exc, f"writing {SPEC_FILE}") from exc


@dataclass
class PreprocessSummary:
    """What :func:`preprocess` did: titles written, skipped (finished before) and failed (their
    status records), seconds of source written, wall seconds, the index when it merged, the
    titles left to another run writing them (``busy``) and the finished titles found damaged and
    written again (``rewritten``: title_id -> what was wrong)."""

    done: int
    skipped: int
    failed: list[dict]
    source_seconds: float
    wall_seconds: float
    index: dict | None
    busy: list[str] = field(default_factory=list)
    rewritten: dict[str, str] = field(default_factory=dict)

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


def _titles_to_write(store_dir: str, mine: Sequence[dict], check_hashes: bool, workers: int) -> tuple[list[dict], dict[str, str]]:
    """The titles of ``mine`` to write: not finished, or finished but damaged (a file of another
    size than ``meta.json`` records; with ``check_hashes`` also another sha256 or non-finite
    audio), and what is wrong with the damaged ones.  First removes what dead writers left in
    ``STORE/.tmp/`` (live runs' temporary folders are left alone: :func:`sweep_temps`)."""
    swept = sweep_temps(store_dir)
    if swept:
        logger.info("preprocess: removed the unfinished work of %d titles left by runs that died", swept)
    folders = [os.path.join(store_dir, TITLES_DIR, title_dir_name(e["title_id"])) for e in mine]

    def problem(folder: str) -> str | None:
        if not os.path.isfile(os.path.join(folder, META_FILE)):
            return ""  # not finished
        return title_problem(folder, full=check_hashes)

    with ThreadPoolExecutor(max(1, workers if check_hashes else 1)) as pool:
        problems = list(pool.map(problem, folders))
    damaged = {e["title_id"]: p for e, p in zip(mine, problems) if p}
    for title_id, p in damaged.items():
        logger.warning("preprocess: title %r is damaged (%s): writing it again", title_id, p)
    return [e for e, p in zip(mine, problems) if p is not None], damaged


def _run_titles(todo: Sequence[dict], store_dir: str, spec: StoreSpec, workers: int, redo: set[str], account) -> None:
    """:func:`preprocess_title` of every title of ``todo`` (in ``workers`` processes), each
    result to ``account``.  A full disk or a dead worker stops the run as a :class:`StoreError`
    once the titles being written have finished or been removed."""
    threads = max(1, resolve_workers(0) // max(1, min(workers, len(todo) or 1)))  # source decoding threads per title
    jobs = [(e, store_dir, spec, threads, e["title_id"] in redo) for e in todo]
    if workers <= 1 or len(todo) <= 1:
        for job in jobs:
            account(preprocess_title(*job))
        return
    pool = process_pool(min(workers, len(todo)))
    try:
        for fut in as_completed([pool.submit(preprocess_title, *job) for job in jobs]):
            account(fut.result())
    except BrokenProcessPool as exc:
        raise StoreError(
            store_dir,
            "a preprocess worker process died (killed by the system: out of memory? try fewer --workers); "
            "rerun tools/preprocess.py to carry on (finished titles are kept)",
        ) from exc
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


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
    check_hashes: bool = False,
) -> PreprocessSummary:
    """Write the catalog's titles (``shard`` of ``num_shards``) into ``store_dir``.

    Finished titles are skipped unless damaged (see :func:`_titles_to_write`; ``check_hashes``
    reads their files whole), broken ones are recorded and skipped, titles another run is
    writing are left to it.  ``merge`` (default: only for an unsharded run) writes
    ``index.json`` afterwards.  ``workers``: local processes (0: every core).  The store must be
    on a POSIX file system (titles are renamed into place, writers lock them with ``flock``).
    A full disk raises :class:`StoreError` ("no space left on ...") with nothing half-written
    left behind.
    """
    from tqdm import tqdm

    if "://" in store_dir:
        raise StoreError(store_dir, "must be a local or network-mounted folder (titles are renamed into place)")
    entries = load_catalog(catalog_dir)
    _check_catalog_snippets(entries, catalog_dir, store_dir, spec)
    check_spec(store_dir, spec)
    mine = shard_titles(entries, shard, num_shards)
    workers = resolve_workers(workers)
    todo, damaged = _titles_to_write(store_dir, mine, check_hashes, workers)
    logger.info(
        "preprocess: shard %d/%d: %d titles, %d already done, %d to write (%d damaged) with %d workers -> %s",
        shard, num_shards, len(mine), len(mine) - len(todo), len(todo), len(damaged), workers, store_dir,
    )  # fmt: skip
    t0 = time.time()
    counts, failed, busy, seconds = {"done": 0, "skipped": len(mine) - len(todo)}, [], [], 0.0
    bar = tqdm(total=len(todo), desc="preprocess", unit="title", disable=not progress, dynamic_ncols=True)

    def account(result: dict) -> None:
        nonlocal seconds
        if result["status"] == "failed":
            failed.append(result)
            logger.warning("preprocess: %s failed: %s", result["title_id"], result["reason"])
        elif result["status"] == "busy":
            busy.append(result["title_id"])
            logger.info("preprocess: %s is being written by another run: left to it", result["title_id"])
        else:
            counts[result["status"]] += 1
            seconds += result["seconds"]
        bar.set_postfix(src_s_per_s=f"{seconds / max(time.time() - t0, 1e-9):.1f}", failed=len(failed))
        bar.update()

    try:
        _run_titles(todo, store_dir, spec, workers, set(damaged), account)
    finally:
        bar.close()
    wall = time.time() - t0
    index = build_index(store_dir, catalog_dir) if (num_shards == 1 if merge is None else merge) else None
    summary = PreprocessSummary(counts["done"], counts["skipped"], failed, seconds, wall, index, busy, damaged)
    logger.info(
        "preprocess: %d written (%d were damaged), %d skipped, %d left to another run, %d failed; %.1f s of source in %.1f s (%.1f s/s)",
        summary.done, len(damaged), summary.skipped, len(busy), len(failed), seconds, wall, summary.source_seconds_per_second,
    )  # fmt: skip
    return summary


def build_index(store_dir: str, catalog_dir: str) -> dict:
    """Write ``index.json`` (spec + every finished title of the catalog, sorted by title_id) and
    ``errors.jsonl`` (titles that failed); warns about titles not processed yet.  Runs sharing
    the store merge one at a time, so the last one to finish writes the fullest index."""
    if not os.path.isfile(os.path.join(store_dir, SPEC_FILE)):
        raise StoreError(store_dir, f"no {SPEC_FILE}: nothing was preprocessed into it yet")
    lock_path = os.path.join(store_dir, TMP_DIR, "index.lock")
    lock = store_lock(store_dir, lock_path, wait=True)
    try:
        return _build_index(store_dir, catalog_dir)
    finally:
        unlock(lock_path, lock)


def _build_index(store_dir: str, catalog_dir: str) -> dict:
    spec_path = os.path.join(store_dir, SPEC_FILE)
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
    try:
        write_text(os.path.join(store_dir, INDEX_FILE), json.dumps(index, indent=1) + "\n")
        write_text(os.path.join(store_dir, ERRORS_FILE), "".join(json.dumps(r) + "\n" for r in errors))
    except OSError as exc:
        raise write_error(store_dir, exc, f"writing {INDEX_FILE}") from exc
    if pending:
        logger.warning("merge: %d catalog titles are not processed yet (e.g. %s); run the missing shards and merge again", len(pending), ", ".join(pending[:5]))
    logger.info("merge: index of %d titles (%d snippets), %d failed -> %s", len(titles), sum(t["num_snippets"] for t in titles), len(errors), store_dir)
    return index
