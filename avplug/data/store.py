"""The snippet store: every catalog title cut into aligned, randomly readable snippets (the layout contract).

:func:`avplug.data.store_writer.preprocess` (``tools/preprocess.py``) writes, for a catalog and a
store spec (``DATA.SNIPPET_FRAMES`` F, ``DATA.FPS``, ``DATA.STORE_SHORT_SIDE``, ``DATA.AUDIO_RATE``:
:class:`StoreSpec`), one folder per title under ``STORE/titles/`` (named by :func:`title_dir_name`).
Snippet ``m`` of a title covers ``[m L, (m + 1) L)`` seconds of its source (of *title time*, below,
from the source's start time), ``L = F / FPS``:

- ``video.mp4``: H.264 at exactly FPS frames per second, short side ``STORE_SHORT_SIDE`` (aspect
  kept, even sizes), exactly ``M_n * F`` frames; frame ``j`` is the source frame displayed at
  ``j / FPS``.  A keyframe starts every snippet (GOP = F, no B-frames, no scene-cut keyframes),
  so a snippet decodes without its neighbours.  Encoded with x264's ``fastdecode`` tuning
  (no CABAC, no deblocking) since the store is decoded far more often than written.
- ``audio.npy``: mono float16 at ``AUDIO_RATE``; snippet ``m``'s ``samples_per_snippet =
  round(L * AUDIO_RATE)`` samples start at sample ``round(m * L * AUDIO_RATE)`` (``m *
  samples_per_snippet`` whenever that is an integer), so it reads straight from a memory map.
- ``meta.json``: the title's record (title_id, num_snippets, genre, show_id, scene_starts,
  width, height), where it came from, the keyframe packet positions and timestamps found when
  the video was verified, ``files``: ``{name: {"size", "sha256"}}`` of ``video.mp4`` and
  ``audio.npy`` (:func:`file_record`), which :func:`title_problem` checks (the size on every
  preprocess rerun; the hash, and that the audio is finite, with ``--check-hashes`` and
  ``tools/preprocess.py --verify``), and how the source's timestamps were followed:
  ``audio_coverage`` (fraction of ``audio.npy`` that decoded), ``held_frames`` (final frames
  repeating the source's last one), ``audio_gap_samples`` (silent samples where the source's
  audio timestamps skip ahead: dropped packets, a late start), ``audio_overlap_samples`` (decoded
  samples dropped because their timestamps overlap audio already placed: the joins of files
  concatenated with ``-c copy``) and ``clock_jumps`` (timestamp discontinuities mapped away).  The
  audio is always finite: preprocessing fails a title whose source decodes to NaN or infinite
  samples.

Both streams are placed by their timestamps on one *title time*
(:class:`~avplug.data.decoders.timeline.Timeline`): the source's presentation time, except that
after a clock jump (a spliced file whose second part restarts its clock, an MPEG-TS
discontinuity) the source continues where it was, with the same shift for audio and video, so
the two stay aligned across it.  Audio sample ``i`` is the source's audio at title time
``i / AUDIO_RATE`` (:mod:`~avplug.data.decoders.resampling`), frame ``j`` as above.

``scene_starts`` are PySceneDetect ``ContentDetector`` cuts on the store video, each assigned to
the snippet holding most of the new scene's frames.  ``STORE/store.json`` holds the spec;
``STORE/index.json`` (written at the end of an unsharded run or by ``--merge``) lists the spec and
every finished title; it holds no timings, so a sharded run plus a merge writes the same index as
a local run.

Crash safety: a title is written into ``STORE/.tmp/NAME@HOST@PID`` while its writer holds an
exclusive ``flock`` on ``STORE/.tmp/NAME.lock``, and renamed into ``titles/`` only when complete,
so a folder under ``titles/`` is always whole and a rerun skips it once its files match
``meta.json``.  Runs sharing a store (shards, a second run by mistake) never write one title
twice at once, and remove only the temporary folders of titles whose lock is free (their
writer is dead).  A title that fails is recorded in ``STORE/errors/`` (collected into
``errors.jsonl`` by the merge) and never stops the run; a full disk stops it with a
:class:`StoreError` ("no space left on STORE") after removing the unfinished title, and a rerun
carries on.

Readers use :class:`SnippetStore`, which reads ``index.json`` and raises :class:`StoreError`
naming the title and file when a snippet's video or audio cannot be read or is short.
"""
from __future__ import annotations

import collections
import hashlib
import json
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np
import torch
from iopath.common.file_io import g_pathmgr

from avplug.data.decoders import get_default_decoder, read_clips
from avplug.data.decoders.media import local_path
from avplug.data.errors import MediaError, StoreError
from avplug.data.files import join_path, read_text
from avplug.data.index import TitleRecord
from registry import DECODERS

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


class SnippetStore:
    """Read-only access to a store written by :func:`avplug.data.store_writer.preprocess` (any iopath backend).

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

    def _unreadable(self, title_id: str, path: str, reason: str, idx: list[int] | None = None) -> StoreError:
        snippets = f" snippets {idx} from" if idx else ""
        return StoreError(
            self.root,
            f"title {title_id!r}: cannot read{snippets} {path} ({reason}): "
            f"check the store with tools/preprocess.py --verify --out {self.root}",
        )

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
        try:
            return read_clips(dec, path, starts, self.snippet_frames, self.fps)
        except MediaError as exc:
            raise self._unreadable(title_id, path, exc.reason, idx) from exc

    def _audio_map(self, title_id: str) -> np.ndarray:
        arr = self._audio.get(title_id)
        if arr is None:
            path = self.audio_path(title_id)
            try:
                arr = np.load(local_path(path), mmap_mode="r")
            except (OSError, ValueError, MediaError) as exc:
                raise self._unreadable(title_id, path, f"truncated or damaged: {exc}") from exc
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
        short = [i for i in idx if self.spec.audio_start(i) + spp > arr.shape[0]]
        if short:
            need = self.spec.audio_start(max(short)) + spp
            raise self._unreadable(title_id, self.audio_path(title_id), f"it holds {arr.shape[0]} samples; these need {need}", idx)
        out = np.empty((len(idx), spp), np.float32)
        for row, i in enumerate(idx):
            a = self.spec.audio_start(i)
            out[row] = arr[a : a + spp]
        return torch.from_numpy(out)


# ---------------------------------------------------------------------------------------------
# Checking a title's files against its meta.json
# ---------------------------------------------------------------------------------------------
HASH_CHUNK = 1 << 20


def file_record(path: str) -> dict:
    """``{"size", "sha256"}`` of a local file, as ``meta.json``'s ``files`` holds them."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return {"size": size, "sha256": digest.hexdigest()}


def nonfinite_audio(path: str, samples_per_snippet: int) -> str | None:
    """Where ``audio.npy`` at ``path`` holds NaN or infinite samples (how many, the first one's
    snippet), or None when every sample is finite."""
    arr = np.load(path, mmap_mode="r")
    bad, first = 0, -1
    for lo in range(0, arr.shape[0], HASH_CHUNK):
        where = np.flatnonzero(~np.isfinite(arr[lo : lo + HASH_CHUNK]))
        if where.size and first < 0:
            first = lo + int(where[0])
        bad += where.size
    if not bad:
        return None
    return f"{bad} non-finite audio samples (NaN or inf), the first at sample {first} (snippet {first // samples_per_snippet})"


def title_problem(title_dir: str, *, full: bool) -> str | None:
    """What is wrong with a finished title folder, or None: ``meta.json`` unreadable, a file
    missing or of another size than recorded, and with ``full`` non-finite audio, a sha256 that
    differs, or no checksums recorded.  The message names the file."""
    meta_path = os.path.join(title_dir, META_FILE)
    try:
        meta = json.loads(read_text(meta_path))
        files = meta.get("files")
    except (OSError, ValueError, AttributeError) as exc:
        return f"{meta_path}: unreadable ({exc})"
    if not files:
        return f"{meta_path}: records no checksums (written by an older avplug)" if full else None
    for name, want in files.items():
        path = os.path.join(title_dir, name)
        try:
            size = os.path.getsize(path)
        except OSError:
            return f"{path}: missing"
        if size != want["size"]:
            return f"{path}: {size} bytes, meta.json says {want['size']} (truncated or overwritten)"
    if not full:
        return None
    audio = os.path.join(title_dir, AUDIO_FILE)
    try:
        bad = nonfinite_audio(audio, int(meta["spec"]["samples_per_snippet"]))
    except (OSError, ValueError, KeyError) as exc:
        return f"{audio}: unreadable ({exc})"
    if bad:
        return f"{audio}: {bad}"
    for name, want in files.items():
        if file_record(os.path.join(title_dir, name))["sha256"] != want["sha256"]:
            return f"{os.path.join(title_dir, name)}: its sha256 differs from meta.json's (corrupt)"
    return None


def verify_store(store_dir: str, workers: int = 1) -> tuple[int, list[tuple[str, str]]]:
    """Check every finished title of a local store (:func:`title_problem` with ``full``, in
    ``workers`` threads): the number of titles checked and ``(folder name, problem)`` of each bad one."""
    if not os.path.isfile(os.path.join(store_dir, SPEC_FILE)):
        raise StoreError(store_dir, f"no {SPEC_FILE}: not a snippet store (tools/preprocess.py --out {store_dir} writes one)")
    titles_dir = os.path.join(store_dir, TITLES_DIR)
    names = sorted(os.listdir(titles_dir)) if os.path.isdir(titles_dir) else []
    with ThreadPoolExecutor(max(1, workers)) as pool:
        problems = list(pool.map(lambda name: title_problem(os.path.join(titles_dir, name), full=True), names))
    return len(names), [(name, problem) for name, problem in zip(names, problems) if problem]
