"""Cross-modal retrieval on held-out snippets: the first check that pretraining learned anything.

For N held-out snippets with embeddings z_v^i, z_a^i the score of video i and audio j is the
unnormalized dot product s_ij = z_v^i . z_a^j (the paper's Eq. 1).  Video -> audio (``v2a``)
ranks, for each video i, its own audio among all N audios by s_i. ; audio -> video (``a2v``)
ranks, for each audio j, its own video among all N videos by s_.j.  Per snippet:

- rank (1-based) of the own pair; ties count half: with g others scoring above and e others
  scoring equal, the rank is 1 + g + e / 2 and a hit at k counts min(1, max(0, (k - g) / (e + 1))),
  the expectations under a random order of the tied ones (a collapsed embedding, all scores
  equal, sits exactly at chance);
- within-title test: the fraction of the other snippets of the same title whose pair scores below
  the own pair (ties half), an AUC of own vs same-title others; undefined for a title's only
  snippet.

Figures (:func:`retrieval_measures`): R@1, R@5, the median rank and the within-title AUC of
each direction, each with its chance level (1/N, 5/N, (N + 1)/2, 0.5), a standard error and a
95% interval from the title bootstrap of :mod:`avplug.evaluation.intervals` (per-snippet outcomes
stay those of the full pool; a replicate averages them with its title multiplicities, and its
median rank is the median of the replicate's expanded sample).  With 4096 float32 snippets of
d = 512 and 1000 replicates it takes 0.3-0.6 s on a shared 2-core machine (2048 of d = 64: 0.07 s);
the N x N score matrix is held in the embeddings' precision (64 MiB in float32).
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import torch

from avplug.evaluation.intervals import (
    DEFAULT_REPLICATES,
    bootstrap_weights,
    estimate_keys,
    percentile_interval,
    proportion_interval,
    standard_error,
    title_index,
    warn_if_too_few,
)

#: Directions, as the key prefixes of :func:`retrieval_measures`.
DIRECTIONS = ("v2a", "a2v")
#: Figures of each direction, as the key suffixes of :func:`retrieval_measures`.
FIGURES = ("R@1", "R@5", "median_rank", "within_title")
#: Held-out titles and snippets below which :func:`retrieval_measures` warns: with fewer than 5
#: titles a title bootstrap has at most 35 distinct resamples (C(2T - 1, T)) and its interval is
#: a few title means; below 100 snippets R@1's chance level 1/N is above 1% and R@5's above 5%.
MIN_TITLES = 5
MIN_SNIPPETS = 100
ROWS_PER_CHUNK = 512


def _as_matrix(z: Any, name: str) -> np.ndarray:
    if isinstance(z, torch.Tensor):
        z = z.detach().cpu().numpy()
    z = np.asarray(z)
    if z.dtype not in (np.float32, np.float64):
        z = z.astype(np.float64)
    if z.ndim != 2:
        raise ValueError(f"{name} must be [N, d], got shape {tuple(z.shape)}")
    if not np.isfinite(z).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return z


def retrieval_outcomes(z_video: Any, z_audio: Any, title_ids: Sequence[Hashable]) -> dict[str, np.ndarray]:
    """Per-snippet outcomes ``[N]`` (float64) of both directions, keyed ``"<dir>_rank"``,
    ``"<dir>_hit@1"``, ``"<dir>_hit@5"`` and ``"<dir>_within_title"`` (NaN for a title's only
    snippet), ``<dir>`` in :data:`DIRECTIONS`; definitions in the module docstring."""
    zv, za = _as_matrix(z_video, "z_video"), _as_matrix(z_audio, "z_audio")
    if zv.shape != za.shape:
        raise ValueError(f"z_video {zv.shape} and z_audio {za.shape} must have the same shape")
    n = zv.shape[0]
    if len(title_ids) != n or n == 0:
        raise ValueError(f"title_ids has {len(title_ids)} entries for {n} snippets (need the same, at least 1)")
    labels, num_titles = title_index(title_ids)
    scores = zv @ za.T.astype(zv.dtype, copy=False)
    own = np.diagonal(scores).copy()
    title_size = np.bincount(labels)[labels]
    # Others scoring above / equal to the own pair, among all snippets and within the title;
    # row i of the scores is video i (v2a compares along it), column j audio j (a2v).
    counts = {(d, kind): np.zeros(n) for d in DIRECTIONS for kind in ("above", "equal", "above_same", "equal_same")}
    for lo in range(0, n, ROWS_PER_CHUNK):
        rows = slice(lo, min(n, lo + ROWS_PER_CHUNK))
        block = scores[rows]
        for direction, reference, axis, into in (("v2a", own[rows, None], 1, rows), ("a2v", own[None, :], 0, slice(None))):
            counts[direction, "above"][into] += np.count_nonzero(block > reference, axis=axis)
            counts[direction, "equal"][into] += np.count_nonzero(block == reference, axis=axis)
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(num_titles + 1))
    for t in range(num_titles):
        members = order[bounds[t] : bounds[t + 1]]
        if members.size < 2:
            continue
        block = scores[np.ix_(members, members)]
        for direction, reference, axis in (("v2a", own[members, None], 1), ("a2v", own[None, members], 0)):
            counts[direction, "above_same"][members] = np.count_nonzero(block > reference, axis=axis)
            counts[direction, "equal_same"][members] = np.count_nonzero(block == reference, axis=axis)
    out = {}
    others_same = title_size - 1.0
    for direction in DIRECTIONS:
        above = counts[direction, "above"]
        equal = counts[direction, "equal"] - 1.0  # the own pair equals itself
        out[f"{direction}_rank"] = 1.0 + above + equal / 2.0
        for k in (1, 5):
            out[f"{direction}_hit@{k}"] = np.clip((k - above) / (equal + 1.0), 0.0, 1.0)
        above_same = counts[direction, "above_same"]
        equal_same = np.maximum(counts[direction, "equal_same"] - 1.0, 0.0)  # 0 for a title's only snippet
        with np.errstate(invalid="ignore", divide="ignore"):
            below = (others_same - above_same - equal_same / 2.0) / others_same
        out[f"{direction}_within_title"] = np.where(others_same > 0, below, np.nan)
    return out


def _weighted_medians(values: np.ndarray, labels: np.ndarray, weights: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Median of ``values`` with each title's snippets repeated by its multiplicity, per row of
    ``weights [R, T]`` (the mean of the two middle values for an even total)."""
    order = np.argsort(values, kind="stable")
    ordered, title = values[order], labels[order]
    out = np.empty(weights.shape[0])
    for lo in range(0, weights.shape[0], chunk):
        cumulative = np.cumsum(weights[lo : lo + chunk, title], axis=1)
        total = cumulative[:, -1:]
        lower = (cumulative <= np.floor((total - 1) / 2)).sum(1)
        upper = (cumulative <= np.floor(total / 2)).sum(1)
        out[lo : lo + chunk] = (ordered[lower] + ordered[upper]) / 2
    return out


def retrieval_measures(z_video: Any, z_audio: Any, title_ids: Sequence[Hashable], *, replicates: int = DEFAULT_REPLICATES,
                       seed: int = 0) -> dict[str, Any]:
    """R@1, R@5, median rank and within-title AUC of both directions, with intervals, as flat keys.

    For each ``<dir>_<figure>`` (:data:`DIRECTIONS` x :data:`FIGURES`, e.g. ``"v2a_R@1"``): the
    value, ``_se`` (over ``replicates`` title resamples drawn with ``seed``), ``_ci_low``,
    ``_ci_high`` (95%: :func:`~avplug.evaluation.intervals.proportion_interval` for R@k, the
    percentile interval of the replicates otherwise) and ``_chance``; plus ``num_titles``, ``num_snippets`` and
    ``num_within_title_snippets`` (snippets whose title has another).  Undefined entries (an
    interval with one title, the within-title test without a title of 2 snippets) are ``None``.
    Deterministic given the inputs and ``seed``; warns below :data:`MIN_TITLES` titles or
    :data:`MIN_SNIPPETS` snippets.
    """
    outcomes = retrieval_outcomes(z_video, z_audio, title_ids)
    labels, num_titles = title_index(title_ids)
    n = labels.size
    weights = bootstrap_weights(num_titles, replicates, seed) if num_titles >= 2 else None
    chance = {"R@1": 1.0 / n, "R@5": min(5, n) / n, "median_rank": (n + 1) / 2, "within_title": 0.5}
    out: dict[str, Any] = {}
    for direction in DIRECTIONS:
        for figure in FIGURES:
            name = f"{direction}_{figure}"
            if figure == "median_rank":
                rank = outcomes[f"{direction}_rank"]
                value = float(np.median(rank))
                reps = None if weights is None else _weighted_medians(rank, labels, weights)
            else:
                x = outcomes[f"{direction}_hit@{figure[2:]}" if figure.startswith("R@") else f"{direction}_{figure}"]
                defined = np.isfinite(x)
                sums = np.bincount(labels[defined], x[defined], minlength=num_titles)
                sizes = np.bincount(labels[defined], minlength=num_titles).astype(np.float64)
                value = float(sums.sum() / sizes.sum()) if sizes.sum() else None
                with np.errstate(invalid="ignore", divide="ignore"):
                    reps = None if weights is None or value is None else (weights @ sums) / (weights @ sizes)
            se = None if reps is None else standard_error(reps)
            if reps is None:
                lo = hi = None
            elif figure.startswith("R@"):
                lo, hi = proportion_interval(value, se, n, num_titles)
            else:
                lo, hi = percentile_interval(reps)
            out.update(estimate_keys(name, value, se, lo, hi, chance=chance[figure]))
    out["num_titles"] = num_titles
    out["num_snippets"] = n
    out["num_within_title_snippets"] = int(np.isfinite(outcomes["v2a_within_title"]).sum())
    warn_if_too_few("cross-modal retrieval", num_titles=num_titles, num_snippets=n, min_titles=MIN_TITLES,
                    min_snippets=MIN_SNIPPETS, reason="a title bootstrap needs 5 titles for more than a few distinct "
                    "resamples, and R@1 / R@5 need 100 snippets for a chance level below 1% / 5%")
    return out
