"""The built-in sampling policies, registered in ``registry.SAMPLERS`` under their class names.

=====================  ==========================================================================
``IIDSampler``         the paper's baseline (k = 1): each epoch is a random permutation of all the
                       snippets of all titles, cut into batches; every snippet is equally likely,
                       whatever its title (the union of the X_n, i.i.d. up to no repeats in an
                       epoch).  Requires ``SAMPLER.K 1``.
``HierarchicalSampler`` the paper's policy (section 3): per group, a title n ~ U(1, N), then k
                       distinct snippets of it with span ``max - min + 1 <= w`` (``SAMPLER.WINDOW``,
                       0: no window), every such k-subset equally likely; ``w = k`` gives adjacent
                       snippets.  With ``K 1`` titles are uniform, not snippets: titles with few
                       snippets are over-represented compared with ``IIDSampler``.
``SceneAwareSampler``  the paper's future work (section 4.2, "Sampling window"): the window follows
                       the scene boundaries recorded by preprocessing (``TitleRecord.scene_starts``);
                       ``SAMPLER.SCENE_MODE`` ``one_scene`` draws the k snippets inside one scene,
                       ``k_scenes`` one snippet in each of k different scenes.
=====================  ==========================================================================

The group policies share ``SAMPLER.SHORT_TITLES``, ``SAMPLER.SPREAD_GROUPS`` and
``SAMPLER.GENRE_BALANCED`` (see :class:`avplug.samplers.base.GroupSampler`).
"""
from __future__ import annotations

import numpy as np

import registry
from avplug.samplers.base import GroupSampler, SamplerError, SnippetSampler
from avplug.samplers.subsets import sample_distinct, sample_windowed


@registry.SAMPLERS.register()
class IIDSampler(SnippetSampler):
    """The i.i.d. baseline: batches cut from a per-epoch permutation of every snippet.

    Epoch ``e`` draws one permutation of the ``sum(M_n)`` snippets from ``(seed, e)`` and takes
    consecutive slices of B; the ``sum(M_n) mod B`` snippets left at the end wait for another
    epoch.  Each snippet appears at most once per epoch, so ranks are disjoint.  Every position of
    every batch is uniform over the union of all titles' snippets.  Holds one int32/int64 index per
    snippet while an epoch runs (28 MB for 7M snippets).
    """

    def __init__(self, cfg, titles, *, world_size: int = 1, rank: int = 0, seed: int = 0) -> None:
        super().__init__(cfg, titles, world_size=world_size, rank=rank, seed=seed)
        if cfg.SAMPLER.K != 1:
            raise SamplerError(
                f"IIDSampler: SAMPLER.K = {cfg.SAMPLER.K}: the i.i.d. baseline draws single snippets (k = 1); "
                "set SAMPLER.K 1, or use HierarchicalSampler for k > 1"
            )
        if cfg.SAMPLER.GENRE_BALANCED:
            raise SamplerError(
                "IIDSampler: SAMPLER.GENRE_BALANCED applies to the group samplers (HierarchicalSampler, "
                "SceneAwareSampler); the baseline draws snippets uniformly from all titles"
            )
        if self.total_snippets < self.batch_size:
            raise SamplerError(
                f"IIDSampler: the titles hold {self.total_snippets} snippets, fewer than one global batch "
                f"(SOLVER.BATCH_SIZE = {self.batch_size})"
            )
        self._offsets = np.concatenate([[0], np.cumsum(self.num_snippets)])
        self._perm_epoch: int | None = None
        self._perm = np.zeros(0, dtype=np.int64)

    def describe(self) -> str:
        return f"i.i.d. snippets: a permutation of all {self.total_snippets} per epoch"

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._perm_epoch != epoch:
            dtype = np.int32 if self.total_snippets < 2**31 else np.int64
            perm = self.epoch_rng(epoch).permutation(self.total_snippets)
            self._perm = perm[: self.batches_per_epoch * self.batch_size].astype(dtype)
            self._perm_epoch = epoch
        return self._perm

    def plan_global_batch(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        flat = self._permutation(epoch)[index * self.batch_size : (index + 1) * self.batch_size].astype(np.int64)
        titles = np.searchsorted(self._offsets, flat, side="right") - 1
        return titles, flat - self._offsets[titles]


@registry.SAMPLERS.register()
class HierarchicalSampler(GroupSampler):
    """The paper's hierarchical policy: title n ~ U(1, N), then k distinct snippets within a window.

    Each group is a uniformly random k-subset of the title's ``M_n`` snippets among those with span
    ``max - min + 1 <= w`` (``w = SAMPLER.WINDOW``, 0 or ``>= M_n``: any k-subset); see
    :func:`avplug.samplers.subsets.sample_windowed` for the exact draw.  Titles with ``M_n < k``
    follow ``SAMPLER.SHORT_TITLES``.
    """

    def describe(self) -> str:
        return f"k = {self.k} distinct snippets per title, {self.window_text()}; {self.layout_text()}"

    def sample_groups(self, rng, units, sizes):
        snippets = sample_windowed(rng, self.num_snippets[units], sizes, self.window)
        return np.repeat(units, sizes), snippets


@registry.SAMPLERS.register()
class SceneAwareSampler(GroupSampler):
    """Groups that follow scene boundaries instead of (or inside) a fixed window.

    Scenes are ``TitleRecord.scenes()``: the half-open snippet ranges that begin at
    ``scene_starts`` (a title without scene detection is one scene).

    ``SCENE_MODE "one_scene"``: a title, then one of its scenes with probability proportional to
    its length among the scenes that can hold the group, then ``k`` distinct snippets uniformly
    inside that scene (and within ``SAMPLER.WINDOW`` if set: every k-subset of the scene with
    span ``<= w`` equally likely).  A title's capacity is its longest scene: when no scene holds k
    snippets the title is skipped (``SHORT_TITLES "skip"``) or gives a group of the longest scene's
    length from its longest scenes (``"cap"``: the scenes as long as ``min(k, longest)``).

    ``SCENE_MODE "k_scenes"``: a title, then k distinct scenes of it uniformly, then one snippet
    uniformly inside each: every pair of the group comes from different scenes.  A title's
    capacity is its number of scenes: with fewer than k scenes it is skipped (``"skip"``) or gives
    one snippet from each of its scenes (``"cap"``).  ``SAMPLER.WINDOW`` must be 0 in this mode.
    """

    def prepare(self) -> None:
        self.scene_mode = self.cfg.SAMPLER.SCENE_MODE
        if self.scene_mode not in ("one_scene", "k_scenes"):
            raise SamplerError(f'SceneAwareSampler: SAMPLER.SCENE_MODE = {self.scene_mode!r} must be "one_scene" or "k_scenes"')
        if self.scene_mode == "k_scenes" and self.window:
            raise SamplerError(
                f"SceneAwareSampler: SAMPLER.WINDOW = {self.window} does not apply with SCENE_MODE k_scenes "
                "(one snippet per scene); set SAMPLER.WINDOW 0"
            )
        starts, lengths, counts = [], [], []
        for title in self.titles:
            scenes = title.scenes()
            starts.extend(s for s, _ in scenes)
            lengths.extend(e - s for s, e in scenes)
            counts.append(len(scenes))
        self.scene_start = np.array(starts, dtype=np.int64)
        self.scene_len = np.array(lengths, dtype=np.int64)
        self.scene_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.num_scenes = np.where(self.num_snippets > 0, np.diff(self.scene_ptr), 0)
        self.longest_scene = np.maximum.reduceat(self.scene_len, self.scene_ptr[:-1])
        if self.scene_mode == "one_scene":
            # Scenes that can hold a title's group: at least min(k, longest scene) snippets.
            need = np.repeat(np.minimum(self.k, np.maximum(self.longest_scene, 1)), counts)
            usable = np.where(self.scene_len >= need, self.scene_len, 0)
            self._usable_end = np.cumsum(usable)
            before = np.concatenate([[0], self._usable_end])
            self._title_base = before[self.scene_ptr[:-1]]
            self._title_usable = before[self.scene_ptr[1:]] - self._title_base

    def unit_capacity(self) -> np.ndarray:
        return self.longest_scene if self.scene_mode == "one_scene" else self.num_scenes

    def capacity_meaning(self) -> str:
        return "longest scene" if self.scene_mode == "one_scene" else "number of scenes"

    def describe(self) -> str:
        if self.scene_mode == "one_scene":
            how = f"k = {self.k} distinct snippets inside one scene, {self.window_text()}"
        else:
            how = f"one snippet in each of k = {self.k} distinct scenes"
        return f"{how}; {self.layout_text()}"

    def sample_groups(self, rng, units, sizes):
        titles = np.repeat(units, sizes)
        if self.scene_mode == "one_scene":
            pick = self._title_base[units] + rng.integers(0, self._title_usable[units])
            scene = np.searchsorted(self._usable_end, pick, side="right")
            offsets = sample_windowed(rng, self.scene_len[scene], sizes, self.window)
            return titles, offsets + np.repeat(self.scene_start[scene], sizes)
        scene = sample_distinct(rng, self.num_scenes[units], sizes) + np.repeat(self.scene_ptr[units], sizes)
        return titles, self.scene_start[scene] + rng.integers(0, self.scene_len[scene])
