"""Looking at what a sampling policy produces: batches of every rank, and summary statistics.

``tools/inspect_sampler.py`` is a thin shell around :func:`rank_batches` and :func:`sampler_stats`.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from avplug.data.index import TitleRecord
from avplug.samplers.build import build_sampler
from avplug.samplers.synthetic import synthetic_titles

Batch = Sequence[Sequence[Any]]  # (title_id, snippet_index) pairs


def load_titles_for(cfg, *, synthetic: int = 0, split: str = "train") -> list[TitleRecord]:
    """The catalog a sampler of ``cfg`` would see: ``split`` of the cfg's store, or a synthetic one.

    ``synthetic > 0`` returns :func:`avplug.samplers.synthetic_titles` ``(synthetic, cfg.SEED)``
    and reads nothing from disk.
    """
    if synthetic:
        return synthetic_titles(synthetic, seed=cfg.SEED)
    from avplug.data.splits import load_titles

    return load_titles(cfg, split)


def rank_batches(cfg, titles: Sequence[TitleRecord], *, world_size: int = 1, epoch: int = 0, num_batches: int = 0,
                 seed: int | None = None) -> Iterator[tuple[int, list[list[tuple[str, int]]]]]:
    """Yield ``(batch_index, [rank 0's batch, ..., rank W-1's batch])`` for the first batches of ``epoch``.

    Builds one sampler per rank exactly as the trainer does (``build_sampler`` then ``set_epoch``
    then iteration), so what is shown is what each rank would train on.  ``num_batches <= 0``
    means the whole epoch.
    """
    samplers = [build_sampler(cfg, titles, world_size=world_size, rank=r, seed=seed) for r in range(world_size)]
    for sampler in samplers:
        sampler.set_epoch(epoch)
    total = len(samplers[0]) if num_batches <= 0 else min(num_batches, len(samplers[0]))
    iterators = [iter(s) for s in samplers]
    for index in range(total):
        yield index, [next(it) for it in iterators]


def sampler_stats(global_batches: Iterable[Sequence[Batch]], titles: Sequence[TitleRecord]) -> dict[str, Any]:
    """Summarize global batches, each given as the list of its ranks' local batches (rank order).

    Returns a dict with:

    - ``same_title_negative_fraction``: over the global batch, the fraction of the ``B (B - 1)``
      ordered pairs ``(i, j), i != j`` (the negatives of Eq. 1, both modality directions alike)
      whose two snippets come from the same title; ``(k - 1) / (B - 1)`` for groups of k distinct
      titles, about 0 for the i.i.d. baseline;
    - ``local_same_title_negative_fraction``: the same inside each rank's batch (what a loss
      without gathering would see), averaged over ranks;
    - ``mean_group_size``, ``mean_group_span``, ``max_group_span``: over the same-title groups of
      each global batch with at least 2 snippets, the size and the span ``max - min + 1``;
    - ``title_coverage`` / ``snippet_coverage``: distinct titles / snippets seen over all the
      batches, as a fraction of the catalog;
    - ``duplicates``: items repeated inside a global batch (0 for every built-in policy);
    - ``genre_fractions``: the share of the items of each genre (empty genre: "unknown");
    - ``batches``, ``batch_size``, ``world_size``.

    A statistic with nothing to average (no group of 2, batches of 1) is ``None``.
    """
    genre_of = {t.title_id: t.genre or "unknown" for t in titles}
    total_snippets = sum(t.num_snippets for t in titles)
    n_batches, batch_size, world = 0, 0, 0
    same_global: list[float] = []
    same_local: list[float] = []
    sizes: list[int] = []
    spans: list[int] = []
    seen_titles: set[str] = set()
    seen_items: set[tuple[str, int]] = set()
    duplicates = 0
    genres: Counter[str] = Counter()
    for ranks in global_batches:
        items = [(str(t), int(m)) for local in ranks for (t, m) in local]
        n_batches += 1
        batch_size, world = len(items), len(ranks)
        if len(items) > 1:
            same_global.append(_same_title_fraction([t for t, _ in items]))
        for local in ranks:
            if len(local) > 1:
                same_local.append(_same_title_fraction([str(t) for t, _ in local]))
        duplicates += len(items) - len(set(items))
        by_title: dict[str, list[int]] = {}
        for t, m in items:
            by_title.setdefault(t, []).append(m)
            genres[genre_of.get(t, "unknown")] += 1
        for group in by_title.values():
            if len(group) > 1:
                sizes.append(len(group))
                spans.append(max(group) - min(group) + 1)
        seen_titles.update(by_title)
        seen_items.update(items)
    counted = sum(genres.values()) or 1
    return {
        "batches": n_batches,
        "batch_size": batch_size,
        "world_size": world,
        "same_title_negative_fraction": _mean(same_global),
        "local_same_title_negative_fraction": _mean(same_local),
        "mean_group_size": _mean(sizes),
        "mean_group_span": _mean(spans),
        "max_group_span": max(spans) if spans else 0,
        "title_coverage": len(seen_titles) / max(1, len(titles)),
        "snippet_coverage": len(seen_items) / max(1, total_snippets),
        "duplicates": duplicates,
        "genre_fractions": {g: c / counted for g, c in sorted(genres.items())},
    }


def _same_title_fraction(title_ids: Sequence[str]) -> float:
    n = len(title_ids)
    counts = np.array(list(Counter(title_ids).values()), dtype=np.float64)
    return float((counts * (counts - 1)).sum() / (n * (n - 1)))


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None
