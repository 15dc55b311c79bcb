"""The discrepancy measures of the paper (section 3, Eq. 2) on held-out titles, with intervals.

For held-out snippets x_{n,m} with embeddings z_v^{n,m} (video) and z_a^{n,m} (audio), the score of a
pair is the dot product z_v^{n,m} . z_a^{n',m'} and falls into one of three distributions:

- S+  (``"S+"``):  the matched pair, n = n' and m = m' (one score per snippet);
- S-  (``"S-"``):  same title, different snippets, n = n' and m != m';
- S!= (``"S!="``): different titles, n != n'.

All pairs of S- and S!= would cost O(N^2) for N snippets, so :func:`title_scores` samples
``pairs_per_snippet`` distinct partners per snippet (fewer when a title has fewer other snippets),
which keeps the cost linear in N, and keeps each pair's two titles.  :func:`measures_from_scores`
then estimates KL(S- || S+), KL(S!= || S+), KL(S- || S!=) and the gap KL(S!= || S+) - KL(S- || S+)
with the histogram estimator of :mod:`avplug.evaluation.kl` (``estimator="knn"`` for the k-NN one;
the module gives the bias study behind the default).  The paper's sampling policy is meant to
shrink both KL(S- || S!=) and the gap.

:func:`discrepancy_intervals` adds a standard error from a title bootstrap (a pair across titles t
and s weighs c_t * c_s, see :mod:`avplug.evaluation.intervals`), a delete-one-title jackknife bias
and a 95% interval to each measure: a KL estimate is never reported without its interval, and a
negative estimate (the k-NN's) or a negative lower end means "not resolved from 0".  It warns below
:data:`MIN_TITLES` titles or :data:`MIN_SNIPPETS` snippets.

:func:`heldout_measures` is the one entry point for held-out figures: retrieval
(:mod:`avplug.evaluation.retrieval`) and the measures, flat JSON-ready keys, from embeddings.
:mod:`avplug.evaluation.heldout_embedding` embeds a model's held-out snippets and measures them.
"""
from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from scipy import sparse

from avplug.evaluation.intervals import (
    CONFIDENCE,
    DEFAULT_REPLICATES,
    bootstrap_weights,
    estimate_keys,
    jackknife_weights,
    kl_interval,
    pair_weights,
    title_index,
    warn_if_too_few,
)
from avplug.evaluation.kl import (
    DEFAULT_KL_NEIGHBOURS,
    ESTIMATORS,
    bin_index,
    histogram_edges,
    kl_divergence,
    kl_estimate,
    kl_from_counts,
)
from avplug.evaluation.retrieval import retrieval_measures
from avplug.samplers.subsets import sample_distinct

logger = logging.getLogger(__name__)

#: Keys of :func:`discrepancy_measures`' result holding the four measures, in reporting order.
MEASURE_KEYS = ("KL(S-||S+)", "KL(S!=||S+)", "KL(S-||S!=)", "gap")
#: Keys of :func:`score_distributions`' result.
SCORE_KEYS = ("S+", "S-", "S!=")
#: The KL estimator of the measures (see :mod:`avplug.evaluation.kl` for the choice).
DEFAULT_ESTIMATOR = "histogram"
#: Each divergence as (P, Q) of KL(P || Q).
KL_PAIRS = {"KL(S-||S+)": ("S-", "S+"), "KL(S!=||S+)": ("S!=", "S+"), "KL(S-||S!=)": ("S-", "S!=")}
#: Fewest scores of each distribution the estimators accept.
MIN_SCORES = DEFAULT_KL_NEIGHBOURS + 1
#: Held-out titles and snippets below which :func:`discrepancy_intervals` warns: the smallest held-out
#: set of ``benchmarks/kl_estimators.py``'s grid at which the 95% interval of every measure of the
#: all-zero case is narrower than +-0.1 nats (0.06-0.07 at 10 titles x 50 snippets and at 20 x 25;
#: 0.10-0.11 at 10 x 25, 0.22-0.26 at 5 x 25), below which policies whose measures differ by a
#: tenth of a nat cannot be told apart.
MIN_TITLES = 10
MIN_SNIPPETS = 500
TOO_FEW_REASON = ("a divergence that is truly 0 gets a 95% interval of up to +-0.26 nats at 5 titles x 25 snippets, +-0.11 at "
                  "10 x 25 and +-0.07 at 10 x 50; raise EVAL.DISCREPANCY_MAX_SNIPPETS or DATA.HELDOUT_FRACTION")


# ---------------------------------------------------------------------------------------------
# Score distributions and measures
# ---------------------------------------------------------------------------------------------
def _as_matrix(z: Any, name: str) -> np.ndarray:
    if isinstance(z, torch.Tensor):
        z = z.detach().to("cpu", torch.float64).numpy()
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"{name} must be [N, d], got shape {tuple(z.shape)}")
    return z


def _distinct_partners(rng: np.random.Generator, population: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """For every row r, ``min(count, population[r])`` distinct integers of ``range(population[r])``
    (a uniform subset, :func:`avplug.samplers.subsets.sample_distinct`), flat as ``(rows, values)``."""
    sizes = np.minimum(count, population)
    return np.repeat(np.arange(len(population)), sizes), sample_distinct(rng, population, sizes)


class TitleScores(NamedTuple):
    """Scores of one distribution with the titles of their pairs (indices of :func:`title_index`)."""

    values: np.ndarray  #: float64 [n], z_v^i . z_a^j
    video_title: np.ndarray  #: int64 [n], the title of snippet i (the video)
    audio_title: np.ndarray  #: int64 [n], the title of snippet j (the audio); equal for S+ and S-


def title_scores(
    z_video: Any, z_audio: Any, title_ids: Sequence[Hashable], *, pairs_per_snippet: int = 16, seed: int = 0
) -> dict[str, TitleScores]:
    """The scores z_v . z_a of the three distributions of Eq. 2, each with its pairs' titles.

    ``z_video`` and ``z_audio`` are ``[N, d]`` (row i of both is snippet i), ``title_ids`` has N
    entries.  Returns ``{"S+": [N], "S-": [<= N * p], "S!=": [<= N * p]}`` (:class:`TitleScores`)
    with p = ``pairs_per_snippet``: for every snippet i (its video) p distinct other snippets j of
    the same title (all of them if the title has fewer) and p distinct snippets j of other titles
    are drawn, and the score is z_v^i . z_a^j.  The draw depends only on ``seed`` and the inputs.
    """
    zv, za = _as_matrix(z_video, "z_video"), _as_matrix(z_audio, "z_audio")
    if zv.shape != za.shape:
        raise ValueError(f"z_video {zv.shape} and z_audio {za.shape} must have the same shape")
    n = zv.shape[0]
    if len(title_ids) != n:
        raise ValueError(f"title_ids has {len(title_ids)} entries for {n} snippets")
    if pairs_per_snippet < 1:
        raise ValueError(f"pairs_per_snippet = {pairs_per_snippet}, need >= 1")
    labels, _ = title_index(title_ids)
    # Snippets grouped by title: title t occupies order[start[t]:start[t] + size[t]].
    order = np.argsort(labels, kind="stable")
    sizes = np.bincount(labels)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rng = np.random.default_rng(seed)
    position = np.empty(n, np.int64)
    position[order] = np.arange(n)
    start, size = starts[labels], sizes[labels]  # per snippet: its title's block
    rank = position - start  # the snippet's place inside its block
    # S-: partners at offsets 1 .. size - 1 inside the block (cyclically), so never the snippet itself.
    same_i, offset = _distinct_partners(rng, size - 1, pairs_per_snippet)
    same_j = order[start[same_i] + (rank[same_i] + 1 + offset) % size[same_i]]
    # S!=: the n - size snippets outside the block, numbered around it.
    diff_i, u = _distinct_partners(rng, n - size, pairs_per_snippet)
    diff_j = order[np.where(u < start[diff_i], u, u + size[diff_i])]

    def scores(rows: np.ndarray, cols: np.ndarray, chunk: int = 4096) -> np.ndarray:
        out = np.empty(rows.size)
        for lo in range(0, rows.size, chunk):  # chunks keep the gathered rows in cache
            out[lo : lo + chunk] = np.einsum("ij,ij->i", zv[rows[lo : lo + chunk]], za[cols[lo : lo + chunk]])
        return out

    return {
        "S+": TitleScores(np.einsum("ij,ij->i", zv, za), labels, labels),
        "S-": TitleScores(scores(same_i, same_j), labels[same_i], labels[same_j]),
        "S!=": TitleScores(scores(diff_i, diff_j), labels[diff_i], labels[diff_j]),
    }


def score_distributions(
    z_video: Any, z_audio: Any, title_ids: Sequence[Hashable], *, pairs_per_snippet: int = 16, seed: int = 0
) -> dict[str, np.ndarray]:
    """The score values of :func:`title_scores` (same draw): ``{"S+": [N], "S-": [..], "S!=": [..]}``."""
    drawn = title_scores(z_video, z_audio, title_ids, pairs_per_snippet=pairs_per_snippet, seed=seed)
    return {key: value.values for key, value in drawn.items()}


def _check_counts(scores: Mapping[str, Any]) -> None:
    for key in SCORE_KEYS:
        if key not in scores:
            raise KeyError(f"scores lack {key!r} (have {sorted(scores)})")
        if _values(scores[key]).size < MIN_SCORES:
            raise ValueError(
                f"{key} has {_values(scores[key]).size} scores, too few for the KL estimate (need >= {MIN_SCORES}); "
                "embed more held-out snippets, from titles holding at least 2 snippets each"
            )


def _values(scores: Any) -> np.ndarray:
    return np.asarray(scores.values if isinstance(scores, TitleScores) else scores, dtype=np.float64)


def _with_gap(kl: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(kl)
    out["gap"] = kl["KL(S!=||S+)"] - kl["KL(S-||S+)"]
    return out


def measures_from_scores(scores: Mapping[str, Any], *, estimator: str = DEFAULT_ESTIMATOR) -> dict[str, float]:
    """The four discrepancy measures (point estimates) from :func:`score_distributions`' or
    :func:`title_scores`' output, plus the sample counts ``num_S+``, ``num_S-``, ``num_S!=``."""
    _check_counts(scores)
    values = {key: _values(scores[key]) for key in SCORE_KEYS}
    result: dict[str, Any] = _with_gap({name: kl_estimate(values[p], values[q], estimator=estimator) for name, (p, q) in KL_PAIRS.items()})
    result.update({f"num_{key}": len(values[key]) for key in SCORE_KEYS})
    return result


def discrepancy_measures(
    z_video: Any, z_audio: Any, title_ids: Sequence[Hashable], *, pairs_per_snippet: int = 16, seed: int = 0,
    estimator: str = DEFAULT_ESTIMATOR,
) -> dict[str, float]:
    """KL(S-||S+), KL(S!=||S+), KL(S-||S!=) and the gap KL(S!=||S+) - KL(S-||S+) (no intervals).

    Inputs as in :func:`score_distributions`.  Returns a flat dict of floats under
    :data:`MEASURE_KEYS` plus the sample counts ``num_S+``, ``num_S-``, ``num_S!=`` and
    ``num_titles`` (ints).  :func:`heldout_measures` adds intervals.
    """
    scores = score_distributions(z_video, z_audio, title_ids, pairs_per_snippet=pairs_per_snippet, seed=seed)
    result = measures_from_scores(scores, estimator=estimator)
    result["num_titles"] = title_index(title_ids)[1]
    return result


def _replicate_kl(p: TitleScores, q: TitleScores, weights: np.ndarray, estimator: str) -> np.ndarray:
    """KL(P || Q) for every row of the title multiplicities ``weights [R, T]`` (NaN where a
    replicate leaves too few samples of P or Q)."""
    if estimator == "knn":
        out = np.full(weights.shape[0], np.nan)
        for r in range(weights.shape[0]):
            row = weights[r : r + 1]
            try:
                out[r] = kl_divergence(p.values, q.values, p_weights=pair_weights(row, p.video_title, p.audio_title)[0],
                                       q_weights=pair_weights(row, q.video_title, q.audio_title)[0])
            except ValueError:  # too few samples left in this replicate
                pass
        return out
    if estimator != "histogram":
        raise ValueError(f"unknown KL estimator {estimator!r} (have {', '.join(ESTIMATORS)})")
    edges = histogram_edges(q.values)
    by_title = np.ascontiguousarray(weights.T)  # [T, R]: gathering rows is the fast way round
    counts = [_replicate_counts(side, edges, by_title) for side in (p, q)]
    return np.where(counts[1].sum(1) > 0, kl_from_counts(*counts), np.nan)


def _replicate_counts(scores: TitleScores, edges: np.ndarray, by_title: np.ndarray) -> np.ndarray:
    """Bin counts ``[R, bins]`` of ``scores`` under each column of title multiplicities
    ``by_title [T, R]`` (a pair within title t weighs c_t, across titles t and s c_t * c_s)."""
    num_titles, num_reps = by_title.shape
    bins = edges.size + 1
    index = bin_index(scores.values, edges)
    within = scores.video_title == scores.audio_title
    per_title = np.bincount(scores.video_title[within] * bins + index[within], minlength=num_titles * bins)
    out = by_title.T @ per_title.reshape(num_titles, bins).astype(np.float64)
    if within.all():
        return out
    # Pairs across titles: one group per (video title, audio title, bin), a sparse bin map for the sums.
    key = (scores.video_title[~within] * num_titles + scores.audio_title[~within]) * bins + index[~within]
    groups, size = np.unique(key, return_counts=True)
    pair, group_bin = np.divmod(groups, bins)
    video, audio = np.divmod(pair, num_titles)
    to_bins = sparse.csr_array((size.astype(np.float64), (group_bin, np.arange(groups.size))), shape=(bins, groups.size))
    step = max(1, (1 << 22) // groups.size)
    for lo in range(0, num_reps, step):
        chunk = by_title[:, lo : lo + step]
        out[lo : lo + step] += (to_bins @ (chunk[video] * chunk[audio])).T
    return out


class MeasureReplicates(NamedTuple):
    """The four measures on the full pool and on title resamples (arrays; NaN where a resample is
    too small to estimate)."""

    point: dict[str, float]
    bootstrap: dict[str, np.ndarray]  #: [replicates], one per title-bootstrap replicate
    jackknife: dict[str, np.ndarray]  #: [T], row t leaves title t out


def measure_replicates(
    scores: Mapping[str, TitleScores], num_titles: int, *, estimator: str = DEFAULT_ESTIMATOR,
    replicates: int = DEFAULT_REPLICATES, seed: int = 0,
) -> MeasureReplicates:
    """The measures of :func:`title_scores`' output on the full pool, on ``replicates`` title
    resamples (:func:`bootstrap_weights` with ``seed``) and on the delete-one-title jackknife."""
    _check_counts(scores)
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown KL estimator {estimator!r} (have {', '.join(ESTIMATORS)})")

    def measures(weights: np.ndarray) -> dict[str, np.ndarray]:
        return _with_gap({name: _replicate_kl(scores[p], scores[q], weights, estimator) for name, (p, q) in KL_PAIRS.items()})

    point = _with_gap({name: kl_estimate(scores[p].values, scores[q].values, estimator=estimator) for name, (p, q) in KL_PAIRS.items()})
    return MeasureReplicates(point, measures(bootstrap_weights(num_titles, replicates, seed)), measures(jackknife_weights(num_titles)))


def discrepancy_intervals(
    scores: Mapping[str, TitleScores], num_titles: int, *, estimator: str = DEFAULT_ESTIMATOR,
    replicates: int = DEFAULT_REPLICATES, seed: int = 0,
) -> dict[str, Any]:
    """The four measures with intervals from title resamples, as flat keys (see :func:`heldout_measures`).

    For each name in :data:`MEASURE_KEYS`: the estimate, ``_se`` (standard deviation over the
    title-bootstrap replicates), ``_bias`` (the delete-one-title jackknife's bias estimate),
    ``_ci_low`` / ``_ci_high`` (:func:`kl_interval`), ``_chance`` (0: an embedding without
    structure has the three distributions equal) and ``_above_zero`` (``ci_low > 0``: the
    divergence, or the gap, is resolved from 0); plus ``num_S+``, ``num_S-``, ``num_S!=`` and
    ``kl_estimator``.  Undefined entries are ``None`` (every interval with fewer than 3 titles,
    see :func:`~avplug.evaluation.intervals.kl_interval`).  Warns (:data:`MIN_TITLES`,
    :data:`MIN_SNIPPETS`) when the figures are not meaningful.
    """
    reps = measure_replicates(scores, num_titles, estimator=estimator, replicates=replicates, seed=seed)
    out: dict[str, Any] = {}
    for name in MEASURE_KEYS:
        se, bias, lo, hi = kl_interval(reps.point[name], reps.bootstrap[name], reps.jackknife[name], num_titles)
        out.update(estimate_keys(name, reps.point[name], se, lo, hi, chance=0.0))
        out[f"{name}_bias"] = bias
        out[f"{name}_above_zero"] = bool(lo is not None and lo > 0)
    out.update({f"num_{key}": len(scores[key].values) for key in SCORE_KEYS})
    out["kl_estimator"] = estimator
    warn_if_too_few("discrepancy measures", num_titles=num_titles, num_snippets=len(scores["S+"].values),
                    min_titles=MIN_TITLES, min_snippets=MIN_SNIPPETS, reason=TOO_FEW_REASON)
    return out


def heldout_measures_and_scores(
    z_video: Any, z_audio: Any, title_ids: Sequence[Hashable], *, seed: int = 0, replicates: int = DEFAULT_REPLICATES,
    estimator: str = DEFAULT_ESTIMATOR, pairs_per_snippet: int = 16,
) -> tuple[dict[str, Any], dict[str, TitleScores]]:
    """:func:`heldout_measures`' dict and the :func:`title_scores` draw it measured (e.g. to plot them)."""
    num_titles = title_index(title_ids)[1]
    result = retrieval_measures(z_video, z_audio, title_ids, replicates=replicates, seed=seed)
    scores = title_scores(z_video, z_audio, title_ids, pairs_per_snippet=pairs_per_snippet, seed=seed)
    counts = {f"num_{key}": len(scores[key].values) for key in SCORE_KEYS}
    if min(counts.values()) >= MIN_SCORES:
        result.update(discrepancy_intervals(scores, num_titles, estimator=estimator, replicates=replicates, seed=seed))
    else:
        logger.warning("no discrepancy measures: %s, need >= %d of each (held-out titles with 2 snippets or more, "
                       "and 2 titles or more)", ", ".join(f"{k} {v}" for k, v in counts.items()), MIN_SCORES)
        for name in MEASURE_KEYS:
            result.update(estimate_keys(name, None, None, None, None, chance=0.0))
            result.update({f"{name}_bias": None, f"{name}_above_zero": False})
        result.update(counts, kl_estimator=estimator)
    result["bootstrap_replicates"] = replicates
    result["confidence"] = CONFIDENCE
    return result, scores


def heldout_measures(
    z_video: Any, z_audio: Any, title_ids: Sequence[Hashable], *, seed: int = 0, replicates: int = DEFAULT_REPLICATES,
    estimator: str = DEFAULT_ESTIMATOR, pairs_per_snippet: int = 16,
) -> dict[str, Any]:
    """Everything measured on held-out snippets, with intervals, as one flat JSON-ready dict.

    ``z_video``, ``z_audio`` ``[N, d]`` (arrays or tensors; row i of both is snippet i) and
    ``title_ids`` (N entries).  Deterministic given the inputs and ``seed``, which seeds the S- / S!=
    pair draw (:func:`title_scores`) and the title bootstrap (``replicates`` resamples, shared by
    every figure).  Key scheme (values float, int, bool or str; ``None`` where undefined):

    - ``<figure>`` with ``<figure>_se``, ``<figure>_ci_low``, ``<figure>_ci_high`` (95%) and
      ``<figure>_chance`` for every figure: ``v2a_R@1``, ``v2a_R@5``, ``v2a_median_rank``,
      ``v2a_within_title`` and the same for ``a2v`` (:func:`avplug.evaluation.retrieval.
      retrieval_measures`), and the four measures :data:`MEASURE_KEYS` (``"KL(S-||S+)"``,
      ``"KL(S!=||S+)"``, ``"KL(S-||S!=)"``, ``"gap"``), which add ``<measure>_bias`` (jackknife)
      and ``<measure>_above_zero`` (:func:`discrepancy_intervals`);
    - sample sizes: ``num_titles``, ``num_snippets``, ``num_within_title_snippets``, ``num_S+``,
      ``num_S-``, ``num_S!=``; settings: ``kl_estimator``, ``bootstrap_replicates``, ``confidence``.

    A KL estimate is never reported without its interval: print it with
    :func:`avplug.evaluation.intervals.format_estimate`.  Logs a warning when there are too few
    titles or snippets for a figure to mean much; when a distribution has fewer than
    :data:`MIN_SCORES` scores (one title, or titles of one snippet) the four measures are ``None``.
    """
    return heldout_measures_and_scores(z_video, z_audio, title_ids, seed=seed, replicates=replicates, estimator=estimator,
                                       pairs_per_snippet=pairs_per_snippet)[0]


def plot_score_histograms(scores: Mapping[str, np.ndarray], path: str | Path, *, title: str = "") -> Path:
    """Write overlaid, density-normalized histograms of S+, S- and S!= to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = [np.asarray(scores[key], dtype=np.float64) for key in SCORE_KEYS]
    pooled = np.concatenate([v for v in values if v.size])
    if pooled.size == 0:
        raise ValueError("plot_score_histograms: all three distributions are empty")
    lo, hi = np.percentile(pooled, [0.5, 99.5])
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    bins = np.linspace(lo, hi, 61)
    fig, ax = plt.subplots(figsize=(7, 4))
    colors = {"S+": "tab:green", "S-": "tab:orange", "S!=": "tab:blue"}
    for key, v in zip(SCORE_KEYS, values):
        if v.size:
            ax.hist(np.clip(v, lo, hi), bins=bins, density=True, alpha=0.45, color=colors[key], label=f"{key} (n={v.size})")
    ax.set_xlabel(r"score $z_v^\top z_a$")
    ax.set_ylabel("density")
    ax.set_title(title or "Score distributions on held-out titles")
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
