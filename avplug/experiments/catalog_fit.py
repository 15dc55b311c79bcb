"""Fitting a grid to the catalog: the paper's grid assumes titles of about two thousand snippets.

On a smaller catalog (the demo) :func:`fit_to_catalog` drops a point, with a note, when its k
exceeds the median title length M_n of the training titles (most titles could not give k distinct
snippets), or when its window w is at least the longest title (then w = M_n for every title, the
same run as the no-window point).  Nothing else is adjusted: a point that the cfg's validation
rejects (e.g. ``SOLVER.BATCH_SIZE`` not a multiple of k) is kept in the sweep record with status
``invalid`` and its error (:func:`avplug.experiments.planning.plan_runs`), and the sweep goes on.
"""
from __future__ import annotations

import logging
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from avplug.data.splits import load_titles
from avplug.experiments import SweepError
from avplug.experiments.run_names import run_name

logger = logging.getLogger("avplug.sweep")


@dataclass(frozen=True)
class CatalogStats:
    """Lengths M_n (snippets) of the training titles of a catalog."""

    num_titles: int
    min_snippets: int
    median_snippets: float
    max_snippets: int

    @classmethod
    def from_lengths(cls, lengths: Iterable[int]) -> CatalogStats:
        lengths = [int(n) for n in lengths]
        if not lengths:
            raise SweepError("the catalog has no training titles")
        return cls(len(lengths), min(lengths), float(statistics.median(lengths)), max(lengths))


def catalog_stats(cfg) -> CatalogStats | None:
    """:class:`CatalogStats` of ``cfg``'s training titles (store + catalog), None if they cannot be read."""
    try:
        return CatalogStats.from_lengths(t.num_snippets for t in load_titles(cfg, "train"))
    except (OSError, ValueError, LookupError) as exc:  # a missing or foreign store/catalog (StoreError is a LookupError)
        logger.info("cannot read the training titles of %s / %s: %s", cfg.DATA.CATALOG_DIR, cfg.DATA.STORE_DIR, exc)
        return None


def fit_to_catalog(points: Sequence[Mapping[str, Any]], stats: CatalogStats | None) -> tuple[list[dict[str, Any]], list[str]]:
    """Drop the points a catalog cannot support; returns ``(kept, notes)`` (see the module docstring).

    Only ``SAMPLER.K`` and ``SAMPLER.WINDOW`` are looked at; without ``stats`` every point is kept.
    """
    if stats is None:
        return [dict(p) for p in points], ["catalog not readable: the grid is used as given, unfitted"]
    kept, notes = [], []
    for point in points:
        k, w = point.get("SAMPLER.K"), point.get("SAMPLER.WINDOW")
        label = run_name(point)
        if isinstance(k, int) and k > stats.median_snippets:
            notes.append(
                f"skipped {label}: k = {k} exceeds the median title length M_n = {stats.median_snippets:g} snippets "
                f"of the {stats.num_titles} training titles (most titles cannot give k distinct snippets)"
            )
            continue
        if isinstance(w, int) and w > 0 and w >= stats.max_snippets and not (isinstance(k, int) and w == k):
            notes.append(
                f"skipped {label}: w = {w} >= the longest title ({stats.max_snippets} snippets), the same as "
                "w = M_n (no window) on this catalog"
            )
            continue
        kept.append(dict(point))
    return kept, notes
