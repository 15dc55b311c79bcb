"""The catalog: which source files are usable titles, their snippet counts, and the held-out split.

:func:`ingest` (``tools/ingest.py``) probes every source file in parallel and writes, into the
catalog folder (any iopath backend):

- ``catalog.jsonl``: one usable title per line, sorted by ``title_id``: ``path, title_id,
  show_id, genre, duration_s, fps, width, height, audio_rate, audio_channels, num_snippets``
  (M_n = floor(duration_s / snippet_seconds)), plus ``start_s`` (the timeline origin: snippet m
  covers ``[start_s + m L, start_s + (m + 1) L)``), ``sample_aspect_ratio``,
  ``snippet_seconds`` (the L it was counted with) and ``max_timestamp_jump_s`` (the largest
  timestamp step in either stream, :func:`~avplug.data.decoders.probing.scan_timestamps`: well
  above 0 for a spliced source; the ingest log lists those titles);
- ``rejected.jsonl``: ``path, reason`` for every other file under the source (no audio stream,
  truncated or corrupt, not media, shorter than one snippet, unreadable, duplicate title_id;
  another extension, hidden, a FIFO, socket or device, a broken symlink, a symlink loop, a
  folder that cannot be listed, no meta.csv row), so every file is accounted for;
  :func:`rejection_kind` groups the reasons for the summary line.  Nothing but a regular file is
  ever opened (opening a FIFO would block ingest forever);
- ``split.json``: ``{"train": [...], "heldout": [...], "excluded": [...]}`` title ids.  The
  held-out titles are a seeded fraction of the catalog in which every episode of a show falls on
  the same side; "excluded" are train titles left out by genre subsampling (DATA.GENRES,
  DATA.GENRE_WEIGHTS, DATA.MAX_TITLES: the paper's Table 4 scenarios).

Sources are the media files of a folder (symlinks followed, every folder scanned once) or list
file; with a meta.csv (``path, title_id, show_id, genre``) the csv's rows are the titles, and the
folder's other files are rejected as not listed.
``duration_s`` is what actually decodes (the earlier of the video and audio ends), not only what
the header claims; for a source whose clock jumps (parts joined with their own timestamps) it is
the length of its parts laid end to end, as the store writes them.  Any channel layout and sample
rate is accepted.
"""
from __future__ import annotations

import csv
import errno
import io
import json
import logging
import math
import os
import random
import re
import stat
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import as_completed
from dataclasses import dataclass

from iopath.common.file_io import g_pathmgr

from avplug.data.decoders.media import quiet_ffmpeg
from avplug.data.decoders.probing import SPLICE_STEP_S, decodable_extent, probe, scan_timestamps
from avplug.data.errors import MediaError, write_failure
from avplug.data.files import is_remote, join_path, read_text, write_text
from avplug.errors import UserError
from avplug.resources import available_cpus, process_pool

logger = logging.getLogger(__name__)

CATALOG_FILE = "catalog.jsonl"
REJECTED_FILE = "rejected.jsonl"
SPLIT_FILE = "split.json"
# File name endings scanned in a source folder (a list file may name any file).
MEDIA_EXTENSIONS = (
    ".mp4", ".m4v", ".mkv", ".mov", ".avi", ".webm", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg",
    ".wmv", ".flv", ".vob", ".ogv", ".3gp", ".mxf",
)  # fmt: skip
# A file whose decodable end falls this far short of its header duration is truncated:
# max(seconds, fraction of the duration).
TRUNCATION_TOLERANCE_S = 1.0
TRUNCATION_TOLERANCE_FRACTION = 0.02


class CatalogError(UserError, ValueError):
    """A catalog folder, source list or meta.csv that cannot be used; the message names it."""


# ---------------------------------------------------------------------------------------------
# Source paths and JSON lines
# ---------------------------------------------------------------------------------------------
def _norm(path: str) -> str:
    return path if is_remote(path) else os.path.abspath(os.path.normpath(os.path.expanduser(path)))


def _dirname(path: str) -> str:
    return path.rsplit("/", 1)[0] if is_remote(path) else os.path.dirname(_norm(path))


def _jsonl(rows: Iterable[dict]) -> str:
    return "".join(json.dumps(r, sort_keys=False) + "\n" for r in rows)


# ---------------------------------------------------------------------------------------------
# Sources and metadata
# ---------------------------------------------------------------------------------------------
def list_sources(src: str) -> list[str]:
    """The media files :func:`scan_sources` finds in ``src`` (sorted, without duplicates)."""
    return scan_sources(src)[0]


def scan_sources(src: str) -> tuple[list[str], list[dict]]:
    """The source files named by ``src`` and the rejections of everything else found there.

    ``src`` is a folder, scanned recursively (symlinks followed, each folder once) for
    :data:`MEDIA_EXTENSIONS`, or a text file with one path per line (``#`` comments; relative
    paths are relative to the list file).  Returns (media paths, sorted and unique; ``{"path",
    "reason"}`` for every other entry of the folder: other extensions, hidden entries, FIFOs and
    other non-regular files, broken symlinks, symlink loops, folders that cannot be listed).
    """
    if not src:
        raise CatalogError("no source given: pass --src DIR_OR_LIST or set DATA.SOURCE")
    if g_pathmgr.isdir(src):
        found, rejected = _scan_remote(src) if is_remote(src) else _scan_folder(_norm(src))
        return sorted(set(found)), rejected
    if g_pathmgr.isfile(src):
        base = _dirname(src)
        paths = []
        for line in read_text(src).splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not is_remote(line) and not os.path.isabs(os.path.expanduser(line)):
                line = os.path.join(base, line)
            paths.append(_norm(line))
        return sorted(set(paths)), []
    raise CatalogError(f"source {src!r} is neither a folder nor a list file")


def _extension_reason(name: str) -> str | None:
    """Why a file name is not scanned as media, or None when its extension is a media one."""
    if name.lower().endswith(MEDIA_EXTENSIONS):
        return None
    ext = os.path.splitext(name)[1]
    return f"not a media file extension ({ext or 'no extension'}): not probed"


def _scan_remote(src: str) -> tuple[list[str], list[dict]]:
    found, rejected, stack = [], [], [src]
    while stack:
        folder = stack.pop()
        for name in sorted(g_pathmgr.ls(folder)):
            path = join_path(folder, name)
            is_dir = g_pathmgr.isdir(path)
            reason = _hidden_reason(name, is_dir) or (None if is_dir else _extension_reason(name))
            if reason:
                rejected.append({"path": path, "reason": reason})
            elif is_dir:
                stack.append(path)
            else:
                found.append(path)
    return found, rejected


def _hidden_reason(name: str, is_dir: bool) -> str | None:
    if not name.startswith("."):
        return None
    return "hidden folder (not scanned)" if is_dir else "hidden file (not probed)"


def _scan_folder(root: str) -> tuple[list[str], list[dict]]:
    """Walk a local folder without opening anything but folders (a FIFO would block an open)."""
    found, rejected = [], []
    seen = {_folder_key(os.stat(root)): root}  # every folder queued so far, by (device, inode)
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                names = [e.name for e in sorted(it, key=lambda e: (e.is_symlink(), e.name))]  # real folders first
        except OSError as exc:
            rejected.append({"path": folder, "reason": f"cannot list the folder ({exc.strerror}): its files are not cataloged"})
            continue
        for name in names:
            path = os.path.join(folder, name)
            st, reason = stat_source(path)
            is_dir = st is not None and stat.S_ISDIR(st.st_mode)
            reason = reason or _hidden_reason(name, is_dir)
            if reason is None and is_dir:
                first = seen.setdefault(_folder_key(st), path)
                if first == path:
                    stack.append(path)
                    continue
                reason = _folder_seen_reason(path, first)
            reason = reason or _type_reason(st.st_mode) or _extension_reason(name)
            if reason:
                rejected.append({"path": path, "reason": reason})
            else:
                found.append(path)
    return found, rejected


def _folder_key(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _folder_seen_reason(path: str, first: str) -> str:
    real = os.path.realpath(path)
    if os.path.dirname(path).startswith(real.rstrip("/") + "/") or os.path.dirname(path) == real:
        return f"symlink loop: points to {real}, a folder that contains it (not followed)"
    return f"a link to a folder scanned already (as {first})"


def _type_reason(mode: int) -> str | None:
    """Why a file of this st_mode is never opened, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    kinds = {stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISSOCK: "a socket", stat.S_ISCHR: "a character device",
             stat.S_ISBLK: "a block device", stat.S_ISDIR: "a folder"}  # fmt: skip
    kind = next((name for test, name in kinds.items() if test(mode)), "not a regular file")
    return f"is {kind}, not a regular file (never opened)"


def stat_source(path: str) -> tuple[os.stat_result | None, str | None]:
    """``os.stat`` of a local source (symlinks followed) and, when it fails, why: a symlink
    loop, a broken symlink, no such file, or the system's reason."""
    try:
        return os.stat(path), None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None, "symlink loop: the link never reaches a file"
        if os.path.islink(path):
            return None, f"broken symlink: points to {os.readlink(path)}, which does not exist"
        if exc.errno == errno.ENOENT:
            return None, "no such file"
        return None, f"cannot read the file ({exc.strerror})"


def source_problem(path: str) -> str | None:
    """Why a local source cannot be probed (see :func:`stat_source`; a folder, a FIFO, a socket
    or a device; a file this process may not open), or None.  Opens nothing but a regular file."""
    st, reason = stat_source(path)
    if reason:
        return reason
    reason = _type_reason(st.st_mode)
    if reason:
        return reason
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
    except OSError as exc:
        return f"cannot read the file ({exc.strerror})"
    return None


@dataclass(frozen=True)
class TitleMeta:
    """One meta.csv row: how a source file is named and grouped."""

    title_id: str
    show_id: str = ""
    genre: str = ""


def read_meta(meta_csv: str) -> dict[str, TitleMeta]:
    """Rows of ``meta_csv`` (header ``path,title_id,show_id,genre``; only ``path`` is required;
    an empty title_id is the file name) keyed by the normalized path (relative paths are relative
    to the csv's folder)."""
    try:
        text = read_text(meta_csv)
    except (OSError, FileNotFoundError) as exc:
        raise CatalogError(f"meta file {meta_csv}: cannot read it ({exc})") from exc
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "path" not in [f.strip() for f in reader.fieldnames]:
        raise CatalogError(f"meta file {meta_csv}: needs a header with at least a 'path' column (path,title_id,show_id,genre)")
    base = _dirname(meta_csv)
    rows: dict[str, TitleMeta] = {}
    for lineno, row in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        path = row.get("path", "")
        if not path:
            raise CatalogError(f"meta file {meta_csv}, line {lineno}: empty path")
        if not is_remote(path) and not os.path.isabs(os.path.expanduser(path)):
            path = os.path.join(base, path)
        key = _norm(path)
        if key in rows:
            raise CatalogError(f"meta file {meta_csv}, line {lineno}: {path} is listed twice")
        title_id = row.get("title_id") or _stem(path)
        rows[key] = TitleMeta(title_id=title_id, show_id=row.get("show_id", ""), genre=row.get("genre", ""))
    return rows


def _stem(path: str) -> str:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0] if "." in name else name


def select_sources(src: str, meta: dict[str, TitleMeta] | None) -> tuple[list[str], list[dict]]:
    """The files to catalog and the rejections found on the way (see :func:`scan_sources`).

    Without a meta.csv: ``src``'s files.  With one: the meta.csv rows (the authoritative list of
    titles) that lie in ``src`` (under it for a folder, listed in it for a list file; all rows
    when ``src`` is empty); the files of ``src`` without a row are rejected as not listed, and rows
    whose file is missing stay, to be rejected when probed."""
    if meta is None:
        return scan_sources(src)
    if not src:
        return sorted(meta), []
    found, rejected = scan_sources(src)
    if g_pathmgr.isdir(src):
        root = _norm(src).rstrip("/") + "/"
        rows = [p for p in meta if p.startswith(root)]
    else:
        rows = sorted(set(meta) & set(found))
    rejected = [r for r in rejected if r["path"] not in meta]  # a row is probed, and rejected there if it must be
    rejected += [{"path": p, "reason": "not listed in the meta.csv (not a title)"} for p in sorted(set(found) - set(meta))]
    return sorted(rows), rejected


# ---------------------------------------------------------------------------------------------
# Probing one file
# ---------------------------------------------------------------------------------------------
def inspect_source(path: str, snippet_seconds: float) -> dict:
    """Catalog fields of one source file (without its title/show/genre).

    Raises :class:`MediaError` with the rejection reason when the file is not a usable title.
    """
    problem = None if is_remote(path) else source_problem(path)
    if problem:
        raise MediaError(path, problem)
    info = probe(path)
    if not info.has_audio:
        raise MediaError(path, "no audio stream")
    if info.fps <= 0 or info.width <= 0 or info.height <= 0:
        raise MediaError(path, f"video stream without a usable frame rate or size ({info.fps} fps, {info.width}x{info.height})")
    try:
        video_end, audio_end = decodable_extent(path)
    except MediaError as exc:
        raise MediaError(path, f"truncated or corrupt: {exc.reason}") from exc
    decoded = max(video_end, audio_end) - info.start_s
    if info.duration_s > 0:
        tolerance = max(TRUNCATION_TOLERANCE_S, TRUNCATION_TOLERANCE_FRACTION * info.duration_s)
        if info.duration_s - decoded > tolerance:
            raise MediaError(
                path,
                f"truncated or corrupt: the header says {info.duration_s:.2f} s but decoding stops at {max(decoded, 0.0):.2f} s",
            )
    duration = min(video_end, audio_end) - info.start_s
    scan = scan_timestamps(path)
    if scan.clock_jumps:  # parts laid end to end, as the store writer's Timeline places them
        duration = scan.end_s - info.start_s
    num_snippets = math.floor(duration / snippet_seconds + 1e-9) if duration > 0 else 0
    if num_snippets < 1:
        raise MediaError(path, f"shorter than one snippet ({max(duration, 0.0):.2f} s < {snippet_seconds:.2f} s)")
    return {
        "duration_s": round(duration, 6),
        "start_s": round(info.start_s, 6),
        "fps": round(info.fps, 6),
        "width": info.width,
        "height": info.height,
        "sample_aspect_ratio": round(info.sample_aspect_ratio, 6),
        "audio_rate": info.audio_rate,
        "audio_channels": info.audio_channels,
        "num_snippets": num_snippets,
        "snippet_seconds": snippet_seconds,
        "max_timestamp_jump_s": scan.largest_step_s,
    }


def _inspect_job(args: tuple[str, float]) -> tuple[str, dict | None, str | None]:
    path, snippet_seconds = args
    quiet_ffmpeg()
    try:
        return path, inspect_source(path, snippet_seconds), None
    except MediaError as exc:
        return path, None, exc.reason
    except Exception as exc:  # noqa: BLE001  (a bug or an FFmpeg surprise must not stop the ingest)
        return path, None, f"could not be probed ({type(exc).__name__}: {exc})"


def resolve_workers(workers: int) -> int:
    """``workers`` processes, or every CPU available to this process when 0
    (:func:`avplug.resources.available_cpus`)."""
    if workers and workers > 0:
        return int(workers)
    return available_cpus()


def _probe_all(paths: list[str], snippet_seconds: float, workers: int, progress: bool):
    from tqdm import tqdm

    jobs = [(p, snippet_seconds) for p in paths]
    results = []
    bar = tqdm(total=len(jobs), desc="probing", unit="file", disable=not progress, dynamic_ncols=True)
    try:
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                results.append(_inspect_job(job))
                bar.update()
        else:
            with process_pool(min(workers, len(jobs))) as pool:
                for fut in as_completed([pool.submit(_inspect_job, j) for j in jobs]):
                    results.append(fut.result())
                    bar.update()
    finally:
        bar.close()
    return sorted(results, key=lambda r: r[0])


# ---------------------------------------------------------------------------------------------
# Split and genre subsampling
# ---------------------------------------------------------------------------------------------
#: Fewest held-out titles the held-out measures work with (S!= needs two titles), and fewest training
#: titles a small catalog keeps while giving them (a hierarchical batch draws several distinct titles).
MIN_HELDOUT_TITLES = 2
MIN_TRAIN_TITLES = 3


def make_split(entries: Sequence[dict], fraction: float, seed: int) -> dict[str, list[str]]:
    """Hold out about ``fraction`` of the titles, keeping every show on one side.

    Titles are grouped by ``show_id`` (a title without one is its own group); groups are
    shuffled with ``seed`` and taken for the held-out side while they do not overshoot
    ``round(fraction * N)`` titles.  A small catalog whose fraction gives fewer than
    :data:`MIN_HELDOUT_TITLES` (the measures need them) gets more groups, in the same shuffled order,
    as long as :data:`MIN_TRAIN_TITLES` stay for training (5 titles: 2 held out, 3 trained on); a
    show that would leave too few is passed over.  ``fraction`` 0 holds nothing out.
    Deterministic in (titles, fraction, seed); logs the sizes and why they differ from the fraction.
    """
    if not 0.0 <= fraction < 1.0:
        raise CatalogError(f"held-out fraction {fraction} must be in [0, 1)")
    groups: dict[str, list[str]] = {}
    for e in entries:
        key = f"show:{e['show_id']}" if e.get("show_id") else f"title:{e['title_id']}"
        groups.setdefault(key, []).append(e["title_id"])
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    target = round(fraction * len(entries))
    heldout: list[str] = []
    for key in keys:
        if len(heldout) >= target:
            break
        if len(heldout) + len(groups[key]) <= target:
            heldout.extend(groups[key])
    if fraction > 0 and len(heldout) < MIN_HELDOUT_TITLES:
        heldout = _raise_to_minimum(heldout, [groups[k] for k in keys], len(entries), fraction)
    held = set(heldout)
    return {
        "train": sorted(e["title_id"] for e in entries if e["title_id"] not in held),
        "heldout": sorted(held),
    }


def _raise_to_minimum(heldout: list[str], groups: list[list[str]], total: int, fraction: float) -> list[str]:
    """``heldout`` plus the first groups that fit until it holds :data:`MIN_HELDOUT_TITLES`, with
    :data:`MIN_TRAIN_TITLES` left over, or ``heldout`` unchanged when that cannot be done; logs which."""
    wanted = round(fraction * total)
    held = list(heldout)
    for group in groups:
        if len(held) >= MIN_HELDOUT_TITLES:
            break
        if group[0] not in held and total - len(held) - len(group) >= MIN_TRAIN_TITLES:
            held.extend(group)
    if len(held) >= MIN_HELDOUT_TITLES:
        logger.info(
            "split: holding out %d of %d titles, not round(DATA.HELDOUT_FRACTION %g x %d) = %d: the held-out "
            "measures need at least %d", len(held), total, fraction, total, wanted, MIN_HELDOUT_TITLES,
        )  # fmt: skip
    else:
        held = list(heldout)  # too few titles for the minimum: the fraction's split as it was
        logger.warning(
            "split: only %d of %d titles held out (DATA.HELDOUT_FRACTION %g); the held-out measures need %d, and "
            "holding out more would leave fewer than %d for training (shows stay on one side): add titles",
            len(held), total, fraction, MIN_HELDOUT_TITLES, MIN_TRAIN_TITLES,
        )  # fmt: skip
    return held


def subsample_by_genre(
    entries: Sequence[dict],
    genres: Sequence[str] = (),
    weights: Sequence[float] = (),
    max_titles: int = 0,
    seed: int = 0,
) -> tuple[list[str], list[str]]:
    """Choose training titles by genre (the paper's Table 4 scenarios); returns (kept, dropped).

    - ``genres`` empty: every title is eligible; otherwise only titles of those genres
      (case-insensitive).
    - ``weights`` empty: the eligible titles as they come, capped at ``max_titles`` (a seeded
      uniform subset) when ``max_titles > 0``.
    - ``weights`` given (one per genre): the kept titles follow those proportions; their number
      is the largest the available titles allow, capped at ``max_titles``.
    """
    if weights and len(weights) != len(genres):
        raise CatalogError(f"genre weights {list(weights)} need one weight per genre {list(genres)}")
    if any(w < 0 for w in weights) or (weights and sum(weights) <= 0):
        raise CatalogError(f"genre weights {list(weights)} must be >= 0 with a positive sum")
    rng = random.Random(seed)
    ids = sorted(e["title_id"] for e in entries)
    genre_of = {e["title_id"]: (e.get("genre") or "").strip().casefold() for e in entries}
    wanted = [g.strip().casefold() for g in genres]
    eligible = [t for t in ids if not wanted or genre_of[t] in wanted]
    if not weights:
        kept = eligible
        if max_titles and len(kept) > max_titles:
            kept = sorted(rng.sample(kept, max_titles))
    else:
        pools = {g: [t for t in eligible if genre_of[t] == g] for g in wanted}
        total = sum(weights)
        share = {g: w / total for g, w in zip(wanted, weights)}
        missing = [name for name, g in zip(genres, wanted) if share[g] > 0 and not pools[g]]
        if missing:
            raise CatalogError(f"no training titles of genre(s) {missing} to draw the requested proportions from")
        feasible = min(len(pools[g]) / share[g] for g in wanted if share[g] > 0)
        n = math.floor(feasible + 1e-9)
        if max_titles:
            n = min(n, max_titles)
        quota = {g: share[g] * n for g in wanted}
        counts = {g: math.floor(q + 1e-9) for g, q in quota.items()}
        by_remainder = sorted(wanted, key=lambda g: (-(quota[g] - counts[g]), wanted.index(g)))
        for g in by_remainder:
            if sum(counts.values()) >= n:
                break
            if counts[g] < len(pools[g]) and share[g] > 0:
                counts[g] += 1
        kept = sorted(t for g in wanted for t in rng.sample(pools[g], counts[g]))
    dropped = sorted(set(ids) - set(kept))
    return kept, dropped


# ---------------------------------------------------------------------------------------------
# Ingest
# ---------------------------------------------------------------------------------------------
def rejection_kind(reason: str) -> str:
    """What a rejection reason says before its details (before the first `` (``, ``:`` or ``, ``)."""
    return re.split(r" \(|:|, ", reason, maxsplit=1)[0].strip()


@dataclass
class IngestResult:
    catalog: list[dict]
    rejected: list[dict]
    split: dict[str, list[str]]

    def rejection_counts(self) -> dict[str, int]:
        """Rejected files per :func:`rejection_kind`, most frequent first."""
        counts = Counter(rejection_kind(r["reason"]) for r in self.rejected)
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def summary(self) -> str:
        """One line: titles, rejections by kind, the split."""
        kinds = ", ".join(f"{n} {kind}" for kind, n in self.rejection_counts().items())
        return (
            f"{len(self.catalog)} titles, {len(self.rejected)} rejected{f' ({kinds})' if kinds else ''}; "
            f"{len(self.split['train'])} train / {len(self.split['heldout'])} held out"
        )


def ingest(
    src: str,
    out_dir: str,
    *,
    snippet_seconds: float,
    meta: str = "",
    heldout_fraction: float = 0.1,
    seed: int = 0,
    workers: int = 0,
    genres: Sequence[str] = (),
    genre_weights: Sequence[float] = (),
    max_titles: int = 0,
    progress: bool = True,
) -> IngestResult:
    """Probe every source, write ``catalog.jsonl``, ``rejected.jsonl`` and ``split.json`` into
    ``out_dir`` and return them.  A bad file is rejected, never fatal.

    ``src``: a folder or list file (:func:`list_sources`); ``meta``: an optional meta.csv, which
    then names the titles (:func:`select_sources`).  Without one, a title's id is its file name.
    """
    if snippet_seconds <= 0:
        raise CatalogError(f"snippet length {snippet_seconds} s must be positive")
    t0 = time.time()
    rows = read_meta(meta) if meta else None
    paths, rejected = select_sources(src, rows)
    if not paths:
        where = f"source {src!r}" + (f" with meta file {meta}" if meta else "")
        others = f" ({len(rejected)} other entries, e.g. {rejected[0]['path']}: {rejected[0]['reason']})" if rejected else ""
        raise CatalogError(f"{where} names no media files{others} (extensions: {' '.join(MEDIA_EXTENSIONS)})")
    metas = {p: (rows or {}).get(p) or TitleMeta(title_id=_stem(p)) for p in paths}
    workers = resolve_workers(workers)
    logger.info("ingest: probing %d files with %d workers (snippets of %.3f s)", len(paths), workers, snippet_seconds)
    catalog, seen = [], {}
    for path, fields, reason in _probe_all(paths, snippet_seconds, workers, progress):
        m = metas[path]
        if reason is None and m.title_id in seen:
            reason = f"duplicate title_id: {m.title_id!r} is already used by {seen[m.title_id]}"
        if reason is not None:
            rejected.append({"path": path, "reason": reason})
            continue
        seen[m.title_id] = path
        catalog.append({"path": path, "title_id": m.title_id, "show_id": m.show_id, "genre": m.genre, **fields})
    catalog.sort(key=lambda e: e["title_id"])
    split = make_split(catalog, heldout_fraction, seed)
    split["excluded"] = []
    if genres or max_titles:
        train = [e for e in catalog if e["title_id"] in set(split["train"])]
        kept, dropped = subsample_by_genre(train, genres, genre_weights, max_titles, seed)
        split["train"], split["excluded"] = kept, dropped
    rejected.sort(key=lambda r: r["path"])
    _write_catalog(out_dir, {CATALOG_FILE: _jsonl(catalog), REJECTED_FILE: _jsonl(rejected), SPLIT_FILE: json.dumps(split, indent=1) + "\n"})
    hours = sum(e["duration_s"] for e in catalog) / 3600
    logger.info(
        "ingest: %d titles (%.2f h, %d snippets), %d rejected, split %d train / %d held out / %d excluded, in %.1f s -> %s",
        len(catalog), hours, sum(e["num_snippets"] for e in catalog), len(rejected),
        len(split["train"]), len(split["heldout"]), len(split["excluded"]), time.time() - t0, out_dir,
    )  # fmt: skip
    for r in rejected:
        logger.info("rejected %s: %s", r["path"], r["reason"])
    _log_spliced(catalog)
    return IngestResult(catalog=catalog, rejected=rejected, split=split)


def _log_spliced(catalog: Sequence[dict]) -> None:
    """One log line per title whose timestamps jump by more than rounding (a spliced source)."""
    spliced = [e for e in catalog if e["max_timestamp_jump_s"] > SPLICE_STEP_S]
    if spliced:
        logger.info(
            "ingest: timestamp jumps in %d of %d titles (spliced, or packets missing); the store places them by timestamp",
            len(spliced), len(catalog),
        )  # fmt: skip
    for e in spliced:
        logger.info("timestamp jump of %.3f s in %s (%s)", e["max_timestamp_jump_s"], e["title_id"], e["path"])


def _write_catalog(out_dir: str, files: dict[str, str]) -> None:
    """Write the catalog's files; a failed write (a full disk, a read-only folder) is a
    :class:`CatalogError` naming the folder, and leaves no temporary file behind."""
    try:
        if not g_pathmgr.exists(out_dir):
            g_pathmgr.mkdirs(out_dir)
        for name, text in files.items():
            write_text(join_path(out_dir, name), text)
    except OSError as exc:
        raise CatalogError(f"catalog {out_dir}: {write_failure(exc, out_dir)}: free space (or fix the folder) and rerun tools/ingest.py") from exc


# ---------------------------------------------------------------------------------------------
# Reading a catalog
# ---------------------------------------------------------------------------------------------
def load_catalog(catalog_dir: str) -> list[dict]:
    """The entries of ``catalog_dir/catalog.jsonl`` (see the module docstring)."""
    path = join_path(catalog_dir, CATALOG_FILE)
    if not g_pathmgr.exists(path):
        raise CatalogError(f"catalog {catalog_dir}: no {CATALOG_FILE} (run tools/ingest.py --out {catalog_dir})")
    rows = []
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise CatalogError(f"{path}, line {lineno}: not JSON ({exc})") from exc
    return rows


def load_rejected(catalog_dir: str) -> list[dict]:
    """The entries of ``catalog_dir/rejected.jsonl``: ``{"path", "reason"}``."""
    path = join_path(catalog_dir, REJECTED_FILE)
    if not g_pathmgr.exists(path):
        return []
    return [json.loads(line) for line in read_text(path).splitlines() if line.strip()]


def load_split(catalog_dir: str) -> dict[str, list[str]]:
    """``{"train": [title_ids], "heldout": [title_ids]}`` from ``catalog_dir/split.json``."""
    path = join_path(catalog_dir, SPLIT_FILE)
    if not g_pathmgr.exists(path):
        raise CatalogError(f"catalog {catalog_dir}: no {SPLIT_FILE} (run tools/ingest.py --out {catalog_dir})")
    data = json.loads(read_text(path))
    try:
        return {"train": list(data["train"]), "heldout": list(data["heldout"])}
    except (KeyError, TypeError) as exc:
        raise CatalogError(f"{path}: needs 'train' and 'heldout' lists") from exc
