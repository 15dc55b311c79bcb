"""Whether a global batch of groups fits a catalog, and the nearest settings that do.

A group policy (:class:`avplug.samplers.base.GroupSampler`) draws the units of one global batch
without repeats, so a batch needs as many distinct eligible units as the worst case of its groups
(:func:`groups_needed`).  When it needs more than the catalog has, :func:`batch_fixes` finds the
largest ``SOLVER.BATCH_SIZE`` below it and the smallest ``SAMPLER.K`` above it that fit, and
``SAMPLER.SHORT_TITLES cap`` if that fits: the settings the refusal names.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BatchLayout:
    """The settings that decide how many units a global batch needs."""

    batch_size: int
    k: int
    window: int
    world_size: int
    short_titles: str
    spread_groups: bool

    def valid(self) -> bool:
        """The constraints :class:`GroupSampler` checks before looking at the catalog."""
        local = self.batch_size // self.world_size
        return (self.batch_size % self.world_size == 0 and self.batch_size % self.k == 0
                and (self.spread_groups or local % self.k == 0) and not 0 < self.window < self.k)

    @property
    def segments(self) -> int:
        """Rank batches filled separately (1 when groups are spread over the ranks)."""
        return 1 if self.spread_groups else self.world_size


def eligible(capacity: np.ndarray, layout: BatchLayout) -> np.ndarray:
    """Positions of the units that can give a group under ``layout.short_titles``."""
    return np.flatnonzero(capacity >= (layout.k if layout.short_titles == "skip" else 1))


def groups_needed(group_sizes: np.ndarray, layout: BatchLayout) -> int:
    """Most groups a global batch can need: each rank segment filled by the smallest groups (when all of
    them cannot fill one, as many more groups of k as the rest of the segment takes)."""
    smallest = np.sort(group_sizes)
    segment = layout.batch_size // layout.segments
    held = np.cumsum(smallest)
    filled = np.searchsorted(held, segment)  # index of the group that fills it
    if filled < len(smallest):
        per_segment = int(filled) + 1
    else:
        per_segment = len(smallest) + -(-(segment - int(held[-1] if len(held) else 0)) // layout.k)
    return layout.segments * per_segment


def fits(capacity: np.ndarray, layout: BatchLayout) -> bool:
    """Whether every global batch of ``layout`` finds enough distinct eligible units in ``capacity``."""
    units = eligible(capacity, layout)
    return bool(len(units)) and groups_needed(np.minimum(capacity[units], layout.k), layout) <= len(units)


def batch_fixes(capacity: np.ndarray, layout: BatchLayout) -> list[str]:
    """``KEY VALUE`` settings, each changing one key of ``layout``, with which the catalog fits."""
    fixes = []
    step = math.lcm(layout.k, layout.world_size) if layout.spread_groups else layout.k * layout.world_size
    for batch in range(layout.batch_size - step, 0, -step):
        if fits(capacity, _with(layout, batch_size=batch)):
            fixes.append(f"SOLVER.BATCH_SIZE {batch}")
            break
    for k in range(layout.k + 1, layout.batch_size + 1):
        candidate = _with(layout, k=k)
        if candidate.valid() and fits(capacity, candidate):
            fixes.append(f"SAMPLER.K {k}")
            break
    if layout.short_titles == "skip" and fits(capacity, _with(layout, short_titles="cap")):
        fixes.append("SAMPLER.SHORT_TITLES cap")
    return fixes


def _with(layout: BatchLayout, **changes) -> BatchLayout:
    return BatchLayout(**{**layout.__dict__, **changes})
