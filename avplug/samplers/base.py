"""Base classes of the sampling policies: epochs, ranks, resumable positions, groups of snippets.

:class:`SnippetSampler` owns everything that is the same for every policy.  A subclass only says how
to plan global batch ``index`` of ``epoch`` (:meth:`SnippetSampler.plan_global_batch`); the base
class slices each rank's part, iterates an epoch lazily, and saves / restores the position.

:class:`GroupSampler` is the base of the hierarchical policies: a global batch is made of groups,
each holding up to k distinct snippets of one *unit* (a title, or a plugin's own unit such as a TV
show).  Subclasses say what a unit can hold (:meth:`GroupSampler.unit_capacity`) and how to draw a
group from it (:meth:`GroupSampler.sample_groups`); the base class draws the units, handles units
too small for k (``SAMPLER.SHORT_TITLES``) and lays the groups out over the ranks
(``SAMPLER.SPREAD_GROUPS``).

Randomness: global batch ``i`` of epoch ``e`` is a pure function of ``(seed, e, i)``, drawn from its
own ``numpy.random.Generator`` (``SeedSequence(seed, spawn_key=(e, i))``); a per-epoch plan (the
i.i.d. baseline's permutation) uses ``spawn_key=(e,)``.  Every rank computes the same global batch
and keeps its slice, so ranks are disjoint by construction and a resumed job, or any batch asked for
out of order, is reproduced exactly.
"""
from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from avplug.data.index import TitleRecord
from avplug.samplers.draws import build_title_draw
from avplug.samplers.errors import SamplerError
from avplug.samplers.fit import BatchLayout, batch_fixes, eligible, groups_needed

_log = logging.getLogger(__name__)

Batch = list[tuple[str, int]]


class SnippetSampler:
    """A sampling policy over a catalog of titles, for one rank of a world of ``world_size``.

    Built as ``cls(cfg, titles, *, world_size, rank, seed)`` (the ``SAMPLERS`` contract).  Iterating
    yields the remaining local batches of the current epoch, each a list of
    ``cfg.SOLVER.BATCH_SIZE // world_size`` ``(title_id, snippet_index)`` tuples.  An epoch holds
    ``max(1, floor(sum(M_n) / B))`` batches, so an epoch covers about as many snippets as the titles
    hold, whatever the policy (a group policy counts only the units it can draw: see
    :class:`GroupSampler`).

    Position: ``set_epoch(e)`` starts epoch ``e`` at batch 0; every batch handed out by the iterator
    advances the position, and iterating again continues from there (an exhausted epoch yields
    nothing until the next ``set_epoch``, so a checkpoint taken at the end of an epoch resumes into
    the next one).  ``batches_done`` is the position.  ``state_dict()`` is ``{"epoch", "batches_done", ...}`` plus what
    ``load_state_dict`` checks (policy name, batch size, seed, catalog fingerprint);
    ``load_state_dict(d)`` moves to ``d["batches_done"]`` of ``d["epoch"]`` so the next iteration
    yields exactly the rest of that epoch.  A ``set_epoch`` of the same epoch right after
    ``load_state_dict`` keeps the loaded position (both call orders resume correctly).
    """

    def __init__(self, cfg, titles: Sequence[TitleRecord], *, world_size: int = 1, rank: int = 0, seed: int = 0) -> None:
        name = type(self).__name__
        self.cfg = cfg
        self.titles = tuple(titles)
        if not self.titles:
            raise SamplerError(f"{name}: the catalog holds no titles (check DATA.STORE_DIR / DATA.CATALOG_DIR)")
        ids = [t.title_id for t in self.titles]
        if len(set(ids)) != len(ids):
            dup = next(i for i, c in Counter(ids).items() if c > 1)
            raise SamplerError(f"{name}: title_id {dup!r} appears more than once in the catalog")
        self.title_ids = np.array(ids, dtype=object)
        self.num_snippets = np.array([t.num_snippets for t in self.titles], dtype=np.int64)
        if (self.num_snippets < 0).any():
            bad = ids[int(np.flatnonzero(self.num_snippets < 0)[0])]
            raise SamplerError(f"{name}: title {bad!r} has a negative number of snippets")
        self.total_snippets = int(self.num_snippets.sum())
        if self.total_snippets == 0:
            raise SamplerError(f"{name}: the {len(ids)} titles hold no snippets")
        if world_size < 1 or not 0 <= rank < world_size:
            raise SamplerError(f"{name}: rank {rank} is not in a world of size {world_size}")
        if seed < 0:
            raise SamplerError(f"{name}: SEED = {seed}: the seed must be a non-negative integer")
        self.world_size, self.rank, self.seed = int(world_size), int(rank), int(seed)
        self.batch_size = int(cfg.SOLVER.BATCH_SIZE)
        if self.batch_size < 1 or self.batch_size % self.world_size:
            raise SamplerError(f"{name}: SOLVER.BATCH_SIZE = {self.batch_size} is not divisible by the world size {self.world_size}")
        self.local_batch_size = self.batch_size // self.world_size
        self.batches_per_epoch = max(1, self.total_snippets // self.batch_size)
        digest = hashlib.sha1()
        for title_id, m in zip(ids, self.num_snippets.tolist()):
            digest.update(f"{title_id}\t{m}\n".encode())
        self.catalog_fingerprint = digest.hexdigest()[:16]
        self.epoch = 0
        self._position = 0
        self._resume_pending = False

    # --- what a policy implements ------------------------------------------------------------

    def plan_global_batch(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Global batch ``index`` of ``epoch`` as (title positions, snippet indices), rank-major.

        Both arrays have length ``batch_size``; positions index ``self.titles``.  Rank ``r`` gets
        elements ``r * local_batch_size .. (r + 1) * local_batch_size``.  Must depend only on
        ``(self.seed, epoch, index)`` and the constructor's arguments other than ``rank``.
        """
        raise NotImplementedError

    def describe(self) -> str:
        """One line saying what this policy does with its settings (logged when built)."""
        return type(self).__name__

    # --- randomness --------------------------------------------------------------------------

    def batch_rng(self, epoch: int, index: int) -> np.random.Generator:
        """The generator of global batch ``index`` of ``epoch``."""
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(epoch, index)))

    def epoch_rng(self, epoch: int) -> np.random.Generator:
        """The generator of whole-epoch plans (distinct from every batch's generator)."""
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(epoch,)))

    # --- batches -----------------------------------------------------------------------------

    def global_arrays(self, index: int, *, epoch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``plan_global_batch`` for ``epoch`` (default: the current one), checked."""
        epoch = self.epoch if epoch is None else epoch
        if not 0 <= index < self.batches_per_epoch:
            raise IndexError(f"batch {index} is outside the epoch (0 .. {self.batches_per_epoch - 1})")
        titles, snippets = self.plan_global_batch(epoch, index)
        if len(titles) != self.batch_size or len(snippets) != self.batch_size:
            raise RuntimeError(
                f"{type(self).__name__} planned a global batch of {len(titles)} items, expected SOLVER.BATCH_SIZE = {self.batch_size}"
            )
        return titles, snippets

    def _as_items(self, titles: np.ndarray, snippets: np.ndarray) -> Batch:
        return list(zip(self.title_ids[titles].tolist(), snippets.tolist()))

    def global_batch(self, index: int, *, epoch: int | None = None) -> Batch:
        """Every rank's batch ``index`` concatenated in rank order: what the loss sees."""
        return self._as_items(*self.global_arrays(index, epoch=epoch))

    def local_batch(self, index: int, *, epoch: int | None = None, rank: int | None = None) -> Batch:
        """This rank's (or ``rank``'s) part of global batch ``index``."""
        rank = self.rank if rank is None else rank
        titles, snippets = self.global_arrays(index, epoch=epoch)
        part = slice(rank * self.local_batch_size, (rank + 1) * self.local_batch_size)
        return self._as_items(titles[part], snippets[part])

    # --- the trainer's interface -------------------------------------------------------------

    def __len__(self) -> int:
        return self.batches_per_epoch

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` at its first batch (keeps a just-loaded position of the same epoch)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        if self._resume_pending and epoch == self.epoch:
            self._resume_pending = False
            return
        self.epoch, self._position, self._resume_pending = int(epoch), 0, False

    def __iter__(self) -> Iterator[Batch]:
        self._resume_pending = False
        epoch = self.epoch
        while self._position < self.batches_per_epoch:
            batch = self.local_batch(self._position, epoch=epoch)
            self._position += 1
            yield batch

    def world_size_invariant(self) -> bool:
        """Whether global batch ``(epoch, index)`` is the same set of snippets on every world size (elastic resume)."""
        return True

    def world_size_dependence(self) -> str:
        """Why the global batches depend on the world size ("" when they do not)."""
        return ""

    @property
    def batches_done(self) -> int:
        """Batches of the current epoch handed out so far."""
        return self._position

    def state_dict(self) -> dict[str, Any]:
        return {
            "sampler": type(self).__name__,
            "epoch": self.epoch,
            "batches_done": self._position,
            "batches_per_epoch": self.batches_per_epoch,
            "batch_size": self.batch_size,
            "world_size": self.world_size,
            "seed": self.seed,
            "catalog": self.catalog_fingerprint,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at ``state["batches_done"]`` of ``state["epoch"]``; refuses a different setup."""
        missing = [k for k in ("epoch", "batches_done") if k not in state]
        if missing:
            raise KeyError(f"{type(self).__name__}: sampler state lacks {missing}")
        mine = self.state_dict()
        what = {
            "sampler": "the sampling policy (SAMPLER.NAME)",
            "batch_size": "SOLVER.BATCH_SIZE",
            "seed": "SEED",
            "catalog": "the training catalog (titles and their snippet counts)",
            "batches_per_epoch": "the epoch length",
        }
        for key, meaning in what.items():
            if key in state and state[key] != mine[key]:
                raise SamplerError(
                    f"cannot resume the sampler: {meaning} changed since the checkpoint "
                    f"({key} was {state[key]!r}, is now {mine[key]!r})"
                )
        if "world_size" in state and state["world_size"] != self.world_size and not self.world_size_invariant():
            raise SamplerError(
                f"cannot resume {type(self).__name__} saved at world size {state['world_size']} on world size "
                f"{self.world_size}: its global batches depend on the world size ({self.world_size_dependence()}); "
                f"resume on {state['world_size']} ranks"
            )
        epoch, done = int(state["epoch"]), int(state["batches_done"])
        if epoch < 0 or not 0 <= done <= self.batches_per_epoch:
            raise ValueError(f"sampler state epoch {epoch}, batches_done {done} is outside 0 .. {self.batches_per_epoch}")
        self.epoch, self._position, self._resume_pending = epoch, done, True


class GroupSampler(SnippetSampler):
    """A global batch of groups: up to k distinct snippets of one unit each (the hierarchical family).

    Per global batch: units are drawn without repeats by the title-draw strategy
    (:mod:`avplug.samplers.draws`: uniform, or genre-balanced with ``SAMPLER.GENRE_BALANCED``); each
    gives a group of ``min(k, capacity)`` snippets through :meth:`sample_groups`; the groups fill the
    batch in draw order.

    Units that cannot give k distinct snippets (``capacity < k``) follow ``SAMPLER.SHORT_TITLES``:
    ``"skip"`` leaves them out of the draw (listed in ``skipped_units``); ``"cap"`` keeps them with a
    group of ``capacity`` snippets, and then the group that would overflow a rank's batch is drawn
    smaller, to the room left (still distinct snippets within the window).  With ``"skip"`` every
    group holds exactly k snippets.  The skipped units are logged by name (rank 0), and an epoch holds
    ``max(1, floor(S / B))`` batches where S counts the snippets of the eligible units only
    (:meth:`unit_snippets`).

    A unit appears at most once per global batch, also in a small catalog: a second group of the same
    title would put 2k of its snippets in the batch (the hierarchical policy's k would silently become
    2k for that title, and a snippet could meet itself as a negative).  A batch that may need more
    distinct eligible units than there are is refused when the sampler is built
    (:class:`avplug.samplers.errors.SamplerError`, a user error) with the ``SOLVER.BATCH_SIZE``,
    ``SAMPLER.K`` or ``SAMPLER.SHORT_TITLES`` value that would fit (:mod:`avplug.samplers.fit`).

    Layout: ``SAMPLER.SPREAD_GROUPS False`` (default) fills each rank's batch with whole groups
    (``B / W`` must be a multiple of k), so a title's k snippets sit on one rank.  ``True`` fills the
    global batch with groups in order and deals item ``j`` to rank ``j mod W``, so a group's snippets
    land on ``min(k, W)`` different ranks.  Either way the global batch holds the same groups.

    Subclasses implement :meth:`sample_groups` and, for units other than titles,
    :meth:`unit_capacity`, :meth:`unit_genres`, :meth:`unit_snippets` and :meth:`unit_names`;
    :meth:`prepare` runs before those are read.
    """

    def __init__(self, cfg, titles: Sequence[TitleRecord], *, world_size: int = 1, rank: int = 0, seed: int = 0) -> None:
        super().__init__(cfg, titles, world_size=world_size, rank=rank, seed=seed)
        name, s = type(self).__name__, cfg.SAMPLER
        self.k, self.window = int(s.K), int(s.WINDOW)
        self.short_titles, self.spread_groups = s.SHORT_TITLES, bool(s.SPREAD_GROUPS)
        if self.k < 1 or self.batch_size % self.k:
            raise SamplerError(f"{name}: SOLVER.BATCH_SIZE = {self.batch_size} must be a multiple of SAMPLER.K = {self.k}")
        if self.window < 0 or 0 < self.window < self.k:
            raise SamplerError(f"{name}: SAMPLER.WINDOW = {self.window} must be >= SAMPLER.K = {self.k}, or 0 for no window")
        if self.short_titles not in ("skip", "cap"):
            raise SamplerError(f'{name}: SAMPLER.SHORT_TITLES = {self.short_titles!r} must be "skip" or "cap"')
        if not self.spread_groups and self.local_batch_size % self.k:
            raise SamplerError(
                f"{name}: the per-rank batch {self.local_batch_size} (SOLVER.BATCH_SIZE / world size) must hold whole "
                f"groups of SAMPLER.K = {self.k}, or set SAMPLER.SPREAD_GROUPS True"
            )
        self.prepare()
        capacity = np.asarray(self.unit_capacity(), dtype=np.int64)
        genres = list(self.unit_genres())
        if capacity.ndim != 1 or len(genres) != len(capacity):
            raise ValueError(f"{name}: unit_capacity() and unit_genres() must describe the same units")
        self.unit_capacities = capacity
        self.layout = BatchLayout(self.batch_size, self.k, self.window, self.world_size, self.short_titles, self.spread_groups)
        self.units = eligible(capacity, self.layout)
        self.skipped_units = np.setdiff1d(np.arange(len(capacity)), self.units)
        self._group_size = np.minimum(capacity, self.k)
        self.max_groups = groups_needed(self._group_size[self.units], self.layout) if len(self.units) else 1
        if self.max_groups > len(self.units):
            raise SamplerError(self._too_few_units())
        self.title_draw = build_title_draw(cfg, [genres[u] for u in self.units])
        self._segments = self.layout.segments
        self._segment_len = self.batch_size // self._segments
        unit_snippets = np.asarray(self.unit_snippets(), dtype=np.int64)
        if unit_snippets.shape != capacity.shape:
            raise ValueError(f"{name}: unit_snippets() and unit_capacity() must describe the same units")
        self.usable_snippets = int(unit_snippets[self.units].sum())
        self.batches_per_epoch = max(1, self.usable_snippets // self.batch_size)
        if self.rank == 0:
            self._log_units()

    def _too_few_units(self) -> str:
        """The refusal of a batch that needs more distinct units than are eligible, with the settings that fit."""
        name, kind, total = type(self).__name__, self.unit_kind(), len(self.unit_capacities)
        short = (f"; {len(self.skipped_units)} of the {total} have {self.capacity_meaning()} < SAMPLER.K = {self.k} "
                 f"(SAMPLER.SHORT_TITLES {self.short_titles})") if len(self.skipped_units) else ""
        if not len(self.units):
            problem = f"no {kind} can give a group ({self.capacity_meaning()} < SAMPLER.K = {self.k} for all {total})"
        else:
            problem = (f"a global batch of SOLVER.BATCH_SIZE = {self.batch_size} may need {self.max_groups} distinct "
                       f"{kind}s (groups of up to SAMPLER.K = {self.k}, each {kind} at most once per batch), but only "
                       f"{len(self.units)} are eligible{short}")
        fixes = batch_fixes(self.unit_capacities, self.layout)
        fix = f"set {fixes[0]}" + (f" (or {', or '.join(fixes[1:])})" if fixes[1:] else "") if fixes else "add titles"
        return f"{name}: {problem}: {fix}"

    def _log_units(self) -> None:
        """One line of what the policy uses, and one naming the units it skips (never skipped silently)."""
        name = type(self).__name__
        if len(self.skipped_units):
            names = [str(n) for n in np.asarray(self.unit_names(), dtype=object)[self.skipped_units]]
            shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
            _log.warning(
                "%s: %d of %d %ss are skipped, their %s is below SAMPLER.K = %d (SAMPLER.SHORT_TITLES skip; "
                "'cap' keeps them with smaller groups); the epoch counts only the others' snippets: %s",
                name, len(self.skipped_units), len(self.unit_capacities), self.unit_kind(), self.capacity_meaning(),
                self.k, shown,
            )  # fmt: skip
        skipped = f", {len(self.skipped_units)} skipped" if len(self.skipped_units) else ""
        _log.info(
            "%s: %d %ss eligible%s, %d of %d snippets usable, %d batches of %d per epoch; %s",
            name, len(self.units), self.unit_kind(), skipped, self.usable_snippets, self.total_snippets,
            self.batches_per_epoch, self.batch_size, self.describe(),
        )  # fmt: skip

    # --- what a group policy implements ------------------------------------------------------

    def prepare(self) -> None:
        """Precompute tables the policy needs (called once, before the units are read)."""

    def unit_capacity(self) -> np.ndarray:
        """Per unit, the most distinct snippets one group of it can hold (default: titles, M_n)."""
        return self.num_snippets

    def unit_genres(self) -> Sequence[str]:
        """Per unit, the genre used by the genre-balanced draw (default: the titles' genres)."""
        return [t.genre for t in self.titles]

    def unit_snippets(self) -> np.ndarray:
        """Per unit, the snippets it covers: an epoch holds the eligible units' snippets (default: titles, M_n)."""
        return self.num_snippets

    def unit_names(self) -> Sequence[str]:
        """Per unit, the name that reports give it (default: the title ids)."""
        return list(self.title_ids)

    def unit_kind(self) -> str:
        return "title"

    def capacity_meaning(self) -> str:
        return "M_n"

    def sample_groups(self, rng: np.random.Generator, units: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Draw group g of ``sizes[g]`` distinct snippets from unit ``units[g]`` for every g.

        Returns (title positions, snippet indices), the groups concatenated in order (length
        ``sizes.sum()``).  ``1 <= sizes[g] <= min(k, unit_capacity()[units[g]])``.
        """
        raise NotImplementedError

    # --- planning ----------------------------------------------------------------------------

    def _pack(self, sizes: np.ndarray) -> np.ndarray:
        """Sizes of the groups that fill the batch, in order; the last of a segment may be cut."""
        if self._segment_len % self.k == 0 and (sizes[: self.batch_size // self.k] == self.k).all():
            return sizes[: self.batch_size // self.k]
        out, room, segments = [], self._segment_len, 0
        for size in sizes.tolist():
            take = min(size, room)
            out.append(take)
            room -= take
            if room == 0:
                segments += 1
                if segments == self._segments:
                    return np.array(out, dtype=np.int64)
                room = self._segment_len
        raise RuntimeError(f"{type(self).__name__}: ran out of {self.unit_kind()}s while filling a batch")

    def plan_global_batch(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng = self.batch_rng(epoch, index)
        order = self.units[self.title_draw.draw(rng, self.max_groups)]
        sizes = self._pack(self._group_size[order])
        titles, snippets = self.sample_groups(rng, order[: len(sizes)], sizes)
        if self.spread_groups and self.world_size > 1:
            deal = np.arange(self.batch_size).reshape(self.local_batch_size, self.world_size).T.ravel()
            titles, snippets = titles[deal], snippets[deal]
        return titles, snippets

    def world_size_invariant(self) -> bool:
        # Full groups pack the same way into any number of rank segments; SPREAD_GROUPS packs one segment
        # and only deals the same global batch out to the ranks in another order.
        return self.spread_groups or bool((self._group_size[self.units] == self.k).all())

    def world_size_dependence(self) -> str:
        if self.world_size_invariant():
            return ""
        return (f"{self.unit_kind()}s with fewer than SAMPLER.K = {self.k} snippets give capped groups "
                "(SAMPLER.SHORT_TITLES cap), packed per rank; SAMPLER.SPREAD_GROUPS True removes the dependence")

    def window_text(self) -> str:
        return "no window (w = M_n)" if self.window == 0 else f"w = {self.window}"

    def layout_text(self) -> str:
        groups = "spread over ranks" if self.spread_groups else "kept on one rank"
        return f"groups {groups}, short titles: {self.short_titles}, {self.title_draw.describe(self.unit_kind())}"
