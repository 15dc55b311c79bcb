"""Confidence intervals on held-out titles: a cluster bootstrap over titles, and how to print them.

Snippets of one title are not independent (they share its actors, mastering and music), so every
interval of :mod:`avplug.evaluation.retrieval` and :mod:`avplug.evaluation.discrepancy` resamples
titles, never snippets: a replicate draws T titles with replacement out of the T held-out ones,
and a title drawn c times enters with all of its snippets, each of weight c
(:func:`bootstrap_weights`).  Per-snippet outcomes stay those computed on the full pool; a pair of
snippets from two different titles t and s enters with weight c_t * c_s (the "pigeonhole"
bootstrap of crossed designs, Owen, Ann. Appl. Stat. 1(2), 2007).

Intervals, at level :data:`CONFIDENCE`:

- :func:`percentile_interval`: the 2.5% and 97.5% quantiles of the replicates, for the median
  rank and the within-title AUC;
- :func:`proportion_interval`: Clopper-Pearson at the bootstrap's effective sample size, for R@1
  and R@5, whose percentile interval is [0, 0] when no snippet hits;
- :func:`kl_interval`: estimate and jackknife-corrected estimate, each +- t_{T-1} * bootstrap
  standard error (:func:`t_interval`), for the KL measures.  Their percentile interval is shifted
  by the bootstrap's own plug-in bias: near P = Q the bootstrap distribution of a divergence sits
  above the estimate, and in ``benchmarks/kl_estimators.py`` it covers an analytic 0 in none of
  the sets.  The t quantile with T - 1 degrees of freedom widens the interval for few titles, as
  the number of titles, not of snippets, sets the precision.

With one title there is no interval (``None``), nor for a KL measure with two.
:func:`warn_if_too_few` logs how many titles and snippets a figure needs (thresholds in
:mod:`avplug.evaluation.retrieval` and :mod:`avplug.evaluation.discrepancy`);
:func:`format_estimate` prints ``"0.02 [-0.01, 0.05]"``.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Hashable, Sequence

import numpy as np
from scipy import stats

logger = logging.getLogger(__name__)

#: Level of every interval.
CONFIDENCE = 0.95
#: Bootstrap replicates unless told otherwise.
DEFAULT_REPLICATES = 1000


def title_index(title_ids: Sequence[Hashable]) -> tuple[np.ndarray, int]:
    """``(labels [N] int64, num_titles)``: each snippet's title as an index into the sorted title
    names (``str`` of each id)."""
    names, labels = np.unique(np.asarray([str(t) for t in title_ids]), return_inverse=True)
    return labels.astype(np.int64).ravel(), int(names.size)


def bootstrap_weights(num_titles: int, replicates: int, seed: int) -> np.ndarray:
    """Multiplicities ``[replicates, num_titles]`` (float64, each row sums to ``num_titles``):
    row r counts how often replicate r drew each title when drawing ``num_titles`` titles with
    replacement.  Depends only on the arguments; the stream (``SeedSequence(seed, spawn_key=(1,))``)
    is independent of other draws seeded with ``seed``, e.g. the pairs of S- and S!=."""
    if num_titles < 1 or replicates < 1:
        raise ValueError(f"bootstrap_weights: {num_titles} titles and {replicates} replicates, need >= 1 each")
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    draws = rng.integers(0, num_titles, size=(replicates, num_titles))
    offsets = np.arange(replicates)[:, None] * num_titles
    counts = np.bincount((draws + offsets).ravel(), minlength=replicates * num_titles)
    return counts.reshape(replicates, num_titles).astype(np.float64)


def pair_weights(weights: np.ndarray, video_title: np.ndarray, audio_title: np.ndarray) -> np.ndarray:
    """Per-pair multiplicities ``[R, n]`` from title multiplicities ``[R, T]``: c_t for a pair
    inside title t, c_t * c_s for a pair across titles t and s."""
    within = video_title == audio_title
    if within.all():
        return weights[:, video_title]
    return weights[:, video_title] * np.where(within, 1.0, weights[:, audio_title])


def jackknife_weights(num_titles: int) -> np.ndarray:
    """Multiplicities ``[num_titles, num_titles]`` of the delete-one-title jackknife: row t leaves
    title t out and keeps every other title once."""
    return 1.0 - np.eye(num_titles)


def standard_error(replicates: np.ndarray) -> float | None:
    """Standard deviation of the finite replicates (``None`` with fewer than 2)."""
    finite = replicates[np.isfinite(replicates)]
    return float(np.std(finite, ddof=1)) if finite.size >= 2 else None


def percentile_interval(replicates: np.ndarray, level: float = CONFIDENCE) -> tuple[float | None, float | None]:
    """The (1 - level) / 2 and (1 + level) / 2 quantiles of the finite replicates."""
    finite = replicates[np.isfinite(replicates)]
    if finite.size < 2:
        return None, None
    lo, hi = np.quantile(finite, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def proportion_interval(p: float, se: float | None, n: int, num_titles: int, level: float = CONFIDENCE,
                        ) -> tuple[float | None, float | None]:
    """Interval of a proportion ``p`` of ``n`` snippets whose title-bootstrap standard error is ``se``.

    Korn and Graubard (Survey Methodology 24(2), 1998): the Clopper-Pearson interval at the
    effective sample size n_eff = p (1 - p) / se^2 (at most ``n``; ``n`` when p is 0 or 1 or se is
    0, where the bootstrap has nothing to go on), scaled by (z / t_{T-1})^2 for few titles.  Unlike
    a percentile interval it does not collapse to [0, 0] when no snippet hits (R@1 of an untrained
    model among thousands of snippets).  ``None`` with one title.
    """
    if num_titles < 2 or se is None or not math.isfinite(p):
        return None, None
    binomial = p * (1 - p)
    n_eff = min(float(n), binomial / se**2) if binomial > 0 and se > 0 else float(n)
    alpha = 1 - level
    n_eff *= (stats.norm.ppf(1 - alpha / 2) / stats.t.ppf(1 - alpha / 2, num_titles - 1)) ** 2
    hits = p * n_eff
    lo = 0.0 if hits <= 0 else float(stats.beta.ppf(alpha / 2, hits, n_eff - hits + 1))
    hi = 1.0 if hits >= n_eff else float(stats.beta.ppf(1 - alpha / 2, hits + 1, n_eff - hits))
    return lo, hi


def t_interval(value: float, se: float | None, num_titles: int, level: float = CONFIDENCE) -> tuple[float | None, float | None]:
    """``value +- t_{num_titles - 1} * se`` (``None`` without a standard error or with one title)."""
    if se is None or num_titles < 2 or not math.isfinite(value):
        return None, None
    half = float(stats.t.ppf((1 + level) / 2, num_titles - 1)) * se
    return value - half, value + half


def kl_interval(value: float, bootstrap: np.ndarray, jackknife: np.ndarray, num_titles: int, level: float = CONFIDENCE,
                ) -> tuple[float | None, float | None, float | None, float | None]:
    """``(se, bias, ci_low, ci_high)`` of a divergence estimate ``value`` (or a difference of two).

    ``se`` is :func:`standard_error` of the title-bootstrap replicates, ``bias`` the jackknife
    estimate (T - 1) * (mean of the delete-one-title ``jackknife`` replicates - ``value``), and the
    interval spans ``value`` and the bias-corrected ``value - bias``, each +- t_{T-1} * se.  The
    jackknife removes a bias of order 1 / T, which is what a plug-in divergence has near P = Q
    (about (bins - 1) / 2 * (1 / n + 1 / m)) and what seeing few titles adds, but over-corrects
    where the binning bias dominates; so the interval keeps both ends.  In
    ``benchmarks/kl_estimators.py`` it covers the analytic value in 89-100% of the sets of every
    row, where ``value +- t * se`` alone covers 0 in 55% of them (all-zero case, 20 titles).
    Without a finite jackknife the interval is ``value +- t * se``.  With fewer than 3 titles there
    is none (all ``None``): a pair across titles needs two distinct titles in a replicate, and of 2
    titles the only replicate that has both is the original one.
    """
    if num_titles < 3:
        return None, None, None, None
    se = standard_error(bootstrap)
    finite = jackknife[np.isfinite(jackknife)]
    bias = (num_titles - 1) * (float(finite.mean()) - value) if finite.size == num_titles else None
    lo, hi = t_interval(value, se, num_titles, level)
    if lo is not None and bias is not None:
        lo, hi = min(lo, lo - bias), max(hi, hi - bias)
    return se, bias, lo, hi


def estimate_keys(name: str, value: float | None, se: float | None, lo: float | None, hi: float | None,
                  chance: float) -> dict[str, float | None]:
    """The flat keys of one figure: ``name``, ``name_se``, ``name_ci_low``, ``name_ci_high`` and
    ``name_chance`` (``None`` where undefined, so the dict stays strict JSON)."""

    def clean(x: float | None) -> float | None:
        return None if x is None or not math.isfinite(x) else float(x)

    return {name: clean(value), f"{name}_se": clean(se), f"{name}_ci_low": clean(lo), f"{name}_ci_high": clean(hi),
            f"{name}_chance": float(chance)}


def format_estimate(value: float | None, lo: float | None = None, hi: float | None = None, *, digits: int = 2,
                    nonnegative: bool = False) -> str:
    """``"0.02 [-0.01, 0.05]"``: an estimate with its interval, for reports.

    ``nonnegative`` (a KL divergence) prints a negative estimate as 0 (a k-NN estimate can dip
    below the true value 0); the interval is printed as it is.  ``None`` prints as ``"n/a"``, and
    an estimate without an interval as ``"0.02 [no interval]"``, so that it is not read as exact.
    """
    if value is None or not math.isfinite(value):
        return "n/a"

    def show(x: float) -> str:
        return f"{round(x, digits) + 0.0:.{digits}f}"  # + 0.0: no "-0.00"

    text = show(max(value, 0.0) if nonnegative else value)
    if lo is None or hi is None:
        return f"{text} [no interval]"
    return f"{text} [{show(lo)}, {show(hi)}]"


def warn_if_too_few(what: str, *, num_titles: int, num_snippets: int, min_titles: int, min_snippets: int,
                    reason: str) -> bool:
    """Log a warning when ``num_titles < min_titles`` or ``num_snippets < min_snippets``;
    True when it warned."""
    if num_titles >= min_titles and num_snippets >= min_snippets:
        return False
    logger.warning(
        "%s on %d held-out titles and %d snippets: too few for a meaningful figure, need at least %d titles "
        "and %d snippets (%s)", what, num_titles, num_snippets, min_titles, min_snippets, reason,
    )
    return True
