"""The pretraining dataset over the snippet store, and its DataLoader.

A sample is one snippet ``(title_id, snippet_index)`` of the store: ``DATA.SNIPPET_FRAMES`` frames
and the matching audio.  Samplers (``registry.SAMPLERS``) yield whole minibatches as lists of such
pairs; :func:`build_pretrain_loader` passes each list unchanged to
:meth:`PretrainDataset.__getitems__`, which reads every title of the batch with one store call
(the hierarchical sampler puts k snippets of a title in a batch) and returns the samples in the
sampler's order.

Augmentation is reproducible: each sample's random parameters come from a generator seeded by
``(cfg.SEED, title_id, snippet_index, epoch)`` (:func:`augmentation_seed`), never from a worker's
global RNG, so the same batch gets the same augmentation whatever the number of workers, and a job
killed and resumed at a step reproduces the uninterrupted job's batches.  The loader tags every pair
with the sampler's epoch so that persistent workers see it.

Bad snippets never abort a batch here.  A snippet whose read fails (:class:`StoreError`,
:class:`MediaError`, ``ValueError``, ``OSError``: a truncated or corrupt video, a missing or short
audio file) or whose audio holds a non-finite sample is replaced by a *substitute*: the nearest
readable snippet of the same title not already in the batch (index + 1, - 1, + 2, ...), else one of
the next titles in id order (:meth:`PretrainDataset._substitute_candidates`, at most
:data:`SUBSTITUTE_TRIES` reads).  The substitute depends only on the
key and the store, so batches stay the same size (every rank of Eq. 1 holds the same number of
rows, and the sampler's accounting of batches and exact resume are untouched) and reproduce
exactly after a resume, with or without loader workers.  The sample carries ``bad``: the triple
``(title_id, snippet_index, why)`` of the snippet it replaces, ``why`` one line naming the file;
:func:`collate_snippets` gathers them as the batch's
``bad_snippets`` and the trainer applies ``DATA.BAD_SNIPPETS`` (skip, counted and capped, or stop)
in the main process, where a one-line error can be raised (an exception raised inside a worker
reaches the main process as a multi-line traceback).  When no substitute is readable the batch
fails with :class:`BadSnippetError`.
"""
from __future__ import annotations

import hashlib
import logging
import math
import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from avplug.data.errors import MediaError, StoreError
from avplug.data.index import TitleRecord
from avplug.data.transforms import (
    PretrainTransform,
    build_pretrain_transform,
    stack_params,
)
from avplug.errors import UserError

_log = logging.getLogger(__name__)
READ_ERRORS = (StoreError, MediaError, ValueError, OSError, EOFError)
SUBSTITUTE_TRIES = 32
SAME_TITLE_TRIES = 8
OTHER_TITLE_TRIES = 4


class BadSnippetError(UserError, RuntimeError):
    """Bad snippets of the store that training may not skip; the message names their files."""


def augmentation_seed(seed: int, title_id: str, snippet_index: int, epoch: int) -> int:
    """A 63-bit seed for one sample's augmentation, stable across processes and Python versions."""
    key = f"{int(seed)}\x1f{title_id}\x1f{int(snippet_index)}\x1f{int(epoch)}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1


class PretrainDataset(Dataset):
    """Snippets of a :class:`avplug.data.store.SnippetStore`, indexed by ``(title_id, snippet_index)``.

    ``titles`` (default: all titles of the store) restricts the dataset, e.g. to the train split.
    A sample is a dict:

    - ``cfg.INPUT.ON_DEVICE False``: ``video`` float ``[3, T, crop, crop]`` (normalized),
      ``audio`` float ``[1, n_mels, frames]`` (log-mel, one band dropped);
    - ``cfg.INPUT.ON_DEVICE True``: ``video`` raw uint8 ``[3, T, h, w]`` (RGB, the store's size),
      ``audio`` the raw waveform float ``[1, samples_per_snippet]`` and ``aug`` the sample's
      augmentation parameters (a dict of numbers) for :class:`avplug.data.transforms.BatchTransform`;

    plus ``title_id`` (str) and ``snippet_index`` (int).  Keys may also be triples
    ``(title_id, snippet_index, epoch)``; a pair uses :attr:`epoch` (see :meth:`set_epoch`).
    """

    def __init__(
        self,
        cfg,
        store,
        titles: Sequence[TitleRecord] | None = None,
        *,
        transform: PretrainTransform | None = None,
    ) -> None:
        self.store = store
        self.seed = int(cfg.SEED)
        self.raw = bool(cfg.INPUT.ON_DEVICE)
        self.decoder = None if cfg.DATA.DECODER in ("", None) else str(cfg.DATA.DECODER)
        self.transform = transform if transform is not None else build_pretrain_transform(cfg)
        self.epoch = 0
        _check_store_matches_cfg(store, cfg)
        records = list(store.titles if titles is None else titles)
        self.titles: dict[str, TitleRecord] = {t.title_id: t for t in records}
        self._num_snippets = sum(t.num_snippets for t in records)

    def set_epoch(self, epoch: int) -> None:
        """The epoch used for keys given as pairs (the loader passes it with every key)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self._num_snippets

    def __getitem__(self, key: tuple) -> dict[str, Any]:
        return self.__getitems__([key])[0]

    def __getitems__(self, keys: Sequence[tuple]) -> list[dict[str, Any]]:
        """The samples of ``keys`` in that order; each title is read with one store call per modality.

        A bad snippet comes back as its substitute's sample with ``bad`` set (see the module docstring)."""
        parsed = [self._parse(key) for key in keys]
        by_title: dict[str, list[int]] = defaultdict(list)
        for position, (title_id, _, _) in enumerate(parsed):
            by_title[title_id].append(position)
        samples: list[dict[str, Any] | None] = [None] * len(parsed)
        in_batch = {(title_id, index) for title_id, index, _ in parsed}
        for title_id, positions in by_title.items():
            clips = self._read_snippets(title_id, sorted({parsed[p][1] for p in positions}))
            for p in positions:
                _, index, epoch = parsed[p]
                clip = clips[index]
                if isinstance(clip, str):
                    samples[p] = self._substitute(title_id, index, epoch, clip, in_batch)
                else:
                    samples[p] = self._sample(title_id, index, epoch, *clip)
        return samples  # type: ignore[return-value]

    def _read_snippets(self, title_id: str, wanted: list[int]) -> dict[int, tuple[torch.Tensor, torch.Tensor] | str]:
        """``index -> (frames, waveform)`` for the readable snippets of ``wanted``, ``index -> why`` for the bad ones."""
        try:
            video = self.store.read_video(title_id, wanted, decoder=self.decoder)
            audio = self.store.read_audio(title_id, wanted)
            if video.shape[0] != len(wanted) or audio.shape[0] != len(wanted):
                raise StoreError(getattr(self.store, "root", "?"), f"title {title_id!r}: asked for {len(wanted)} snippets, "
                                 f"got video {tuple(video.shape)} and audio {tuple(audio.shape)}")
        except READ_ERRORS as exc:
            if len(wanted) == 1:
                return {wanted[0]: " ".join(f"{type(exc).__name__}: {exc}".split())}  # one line
            clips: dict[int, tuple[torch.Tensor, torch.Tensor] | str] = {}
            for index in wanted:  # one at a time: which of them is bad
                clips.update(self._read_snippets(title_id, [index]))
            return clips
        clips = {}
        for row, index in enumerate(wanted):
            finite = torch.isfinite(audio[row])
            if not bool(finite.all()):
                clips[index] = (f"{int((~finite).sum())} non-finite audio samples in "
                                f"{self.store.audio_path(title_id)}; re-run tools/preprocess.py for this title")
            else:
                clips[index] = (video[row], audio[row])
        return clips

    def _substitute(self, title_id: str, index: int, epoch: int, why: str, in_batch: set[tuple[str, int]]) -> dict[str, Any]:
        """The sample of the first readable candidate for the bad snippet ``(title_id, index)``, with ``bad`` naming it."""
        for candidate in self._substitute_candidates(title_id, index, in_batch):
            clip = self._read_snippets(candidate[0], [candidate[1]])[candidate[1]]
            if not isinstance(clip, str):
                in_batch.add(candidate)
                sample = self._sample(candidate[0], candidate[1], epoch, *clip)
                sample["bad"] = (title_id, index, why)
                return sample
        raise BadSnippetError(f"title {title_id!r} snippet {index}: {why}; and none of {SUBSTITUTE_TRIES} nearby snippets reads either: check the store "
                              "with tools/preprocess.py --verify")

    def _substitute_candidates(self, title_id: str, index: int, in_batch: set[tuple[str, int]]) -> Iterator[tuple[str, int]]:
        """Up to :data:`SUBSTITUTE_TRIES` keys not in the batch: the title's snippets nearest ``index`` (at most
        :data:`SAME_TITLE_TRIES`), then :data:`OTHER_TITLE_TRIES` of each next title in id order, from ``index`` on."""
        n = self.titles[title_id].num_snippets
        same = [(title_id, index + sign * d) for d in range(1, n) for sign in (1, -1) if 0 <= index + sign * d < n]
        ids = sorted(self.titles)
        start = ids.index(title_id)
        others = []
        for other in (ids[(start + j) % len(ids)] for j in range(1, len(ids))):
            m = self.titles[other].num_snippets
            others += [(other, (index + j) % m) for j in range(min(m, OTHER_TITLE_TRIES))]
        unused = [key for key in same if key not in in_batch][:SAME_TITLE_TRIES] + [key for key in others if key not in in_batch]
        yield from unused[:SUBSTITUTE_TRIES]

    def _parse(self, key: tuple) -> tuple[str, int, int]:
        if len(key) == 3:
            title_id, index, epoch = key
        elif len(key) == 2:
            (title_id, index), epoch = key, self.epoch
        else:
            raise TypeError(f"PretrainDataset keys are (title_id, snippet_index[, epoch]), got {key!r}")
        record = self.titles.get(title_id)
        if record is None:
            raise KeyError(f"PretrainDataset: title {title_id!r} is not among its {len(self.titles)} titles")
        index = int(index)
        if not 0 <= index < record.num_snippets:
            raise IndexError(f"PretrainDataset: title {title_id!r} has snippets 0 .. {record.num_snippets - 1}, asked for {index}")
        return title_id, index, int(epoch)

    def _sample(self, title_id: str, index: int, epoch: int, frames: torch.Tensor, waveform: torch.Tensor) -> dict[str, Any]:
        video = frames.permute(3, 0, 1, 2)  # [T, H, W, 3] -> [3, T, H, W]
        audio = waveform.reshape(1, -1)
        generator = torch.Generator().manual_seed(augmentation_seed(self.seed, title_id, index, epoch))
        params = self.transform.draw(video.shape, audio.shape, generator)
        if self.raw:
            sample = {"video": video, "audio": audio, "aug": params}
        else:
            sample = {"video": self.transform.apply_video(video, params), "audio": self.transform.apply_audio(audio, params)}
        sample["title_id"] = title_id
        sample["snippet_index"] = index
        return sample


def _check_store_matches_cfg(store, cfg) -> None:
    root = getattr(store, "root", "?")
    checks = (
        ("DATA.SNIPPET_FRAMES", cfg.DATA.SNIPPET_FRAMES, store.snippet_frames),
        ("DATA.FPS", float(cfg.DATA.FPS), float(store.fps)),
        ("DATA.AUDIO_RATE", cfg.DATA.AUDIO_RATE, store.audio_rate),
    )
    for key, wanted, stored in checks:
        if wanted != stored:
            raise StoreError(root, f"built with {key} = {stored!r} but the cfg asks for {wanted!r}; rebuild it with tools/preprocess.py")


def stack_in_memory_order(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """``torch.stack(tensors)`` (equal shapes), laid out in memory like the tensors themselves.

    Raw clips are ``[T, H, W, 3]`` frames viewed as ``[3, T, H, W]``: a plain ``torch.stack``
    transposes every pixel into a contiguous ``[B, 3, T, H, W]`` (8x slower than a copy for the
    paper's raw batch), while stacking in memory order is one copy and yields the same values
    with channels-last strides (the layout ``SOLVER.CHANNELS_LAST`` wants anyway).  In a loader
    worker the result is allocated in shared memory, so handing it to the main process copies
    nothing more (as ``default_collate`` does).
    """
    first = tensors[0]
    order = sorted(range(first.dim()), key=lambda d: -first.stride(d)) if first.dim() else []
    if any(t.stride() != first.stride() for t in tensors):
        order = list(range(first.dim()))  # mixed layouts: contiguous
    parts = [t.permute(order) for t in tensors]
    out = None
    if torch.utils.data.get_worker_info() is not None:  # allocate in shared memory, as default_collate
        shape = (len(parts),) + tuple(parts[0].shape)
        storage = first.untyped_storage()._new_shared(math.prod(shape) * first.element_size())
        out = first.new_empty(0).set_(storage, 0, shape)
    stacked = torch.stack(parts, out=out)
    inverse = [0] + [1 + order.index(d) for d in range(first.dim())]
    return stacked.permute(inverse)


def collate_snippets(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack a list of samples into a batch, keeping their order.

    ``video`` and ``audio`` are stacked (raw video of titles with different frame sizes stays a
    list of tensors), ``aug`` becomes one 1-D tensor per parameter, ``title_id`` and
    ``snippet_index`` stay lists, and ``bad_snippets`` lists the ``bad`` triples of substituted samples.
    """
    batch: dict[str, Any] = {
        "title_id": [s["title_id"] for s in samples],
        "snippet_index": [s["snippet_index"] for s in samples],
        "bad_snippets": [s["bad"] for s in samples if "bad" in s],
    }
    videos = [s["video"] for s in samples]
    batch["video"] = stack_in_memory_order(videos) if len({v.shape for v in videos}) == 1 else videos
    batch["audio"] = stack_in_memory_order([s["audio"] for s in samples])
    if "aug" in samples[0]:
        batch["aug"] = stack_params([s["aug"] for s in samples])
    return batch


def sampler_epoch(sampler) -> int | None:
    """The epoch a sampler is set to: its ``epoch`` attribute, else ``state_dict()["epoch"]``."""
    epoch = getattr(sampler, "epoch", None)
    if epoch is None and hasattr(sampler, "state_dict"):
        epoch = sampler.state_dict().get("epoch")
    return None if epoch is None else int(epoch)


class EpochTaggedBatches(Sampler):
    """A batch sampler yielding the sampler's batches unchanged in order, each pair tagged with the epoch.

    ``[(title_id, snippet_index), ...]`` becomes ``[(title_id, snippet_index, epoch), ...]`` so that
    worker processes, which hold their own copy of the dataset, know the epoch for the augmentation
    seed.  The epoch is read from the wrapped sampler when iteration starts (see :func:`sampler_epoch`);
    :meth:`set_epoch` forwards to it.
    """

    def __init__(self, sampler) -> None:
        self.sampler = sampler
        self._epoch = 0
        self._warned = False

    def set_epoch(self, epoch: int) -> None:
        self._epoch = int(epoch)
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[list[tuple[str, int, int]]]:
        epoch = sampler_epoch(self.sampler)
        if epoch is None:
            epoch = self._epoch
            if not self._warned:
                _log.warning(
                    "%s exposes neither .epoch nor state_dict()['epoch']: augmentation seeds use epoch %d "
                    "unless the loader's set_epoch() is called", type(self.sampler).__name__, epoch,
                )
                self._warned = True
        for batch in self.sampler:
            yield [(title_id, int(index), epoch) for title_id, index in batch]


def _seed_worker(worker_id: int) -> None:
    """Seed ``random`` and numpy like torch (DataLoader seeds torch per worker from its generator)."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def build_pretrain_loader(cfg, dataset: PretrainDataset, batch_sampler) -> DataLoader:
    """A DataLoader yielding the collated batches of ``batch_sampler`` in its order.

    ``cfg.DATA.NUM_WORKERS`` worker processes (persistent), pinned memory when CUDA is available,
    :func:`collate_snippets`, and every key tagged with the sampler's epoch
    (:class:`EpochTaggedBatches`); worker RNGs derive from ``cfg.SEED``, though augmentation does
    not depend on them.
    """
    workers = int(cfg.DATA.NUM_WORKERS)
    if workers < 0:
        raise ValueError(f"DATA.NUM_WORKERS = {workers}: must be >= 0")
    kwargs: dict[str, Any] = {}
    if workers > 0:
        kwargs.update(persistent_workers=True, prefetch_factor=2, worker_init_fn=_seed_worker)
    return DataLoader(
        dataset,
        batch_sampler=EpochTaggedBatches(batch_sampler),
        num_workers=workers,
        collate_fn=collate_snippets,
        pin_memory=torch.cuda.is_available(),
        generator=torch.Generator().manual_seed(int(cfg.SEED)),
        **kwargs,
    )
