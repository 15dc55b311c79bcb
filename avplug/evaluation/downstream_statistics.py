"""The statistics of downstream results: per-clip hits, intervals, aggregation over splits, comparisons.

Accuracy (both protocols): the view-averaged predictions of a test clip give top-1 and top-5
(top-min(5, classes)) hits (:func:`top_k_hits`); accuracies are fractions in [0, 1].  Every result
carries its sample size, its chance level ``1 / num_classes`` and a 95% interval:

- one split: the Wilson score interval of the proportion of its ``num_test`` test clips that are
  right (``top1_ci95``, ``top5_ci95``; :func:`wilson_interval`);
- the mean over splits (:func:`aggregate`): a cluster bootstrap (:mod:`avplug.evaluation.intervals`,
  ``DEFAULT_REPLICATES`` draws, seeded, so the same results give the same interval) over the
  *groups* of test clips, the recordings clips share (``group_of`` of the dataset: a UCF101 group,
  an HMDB51 source video, an ESC-50 source file): each draw resamples the groups with replacement
  and weights every split's clips by their group's count, so a clip tested in several splits
  (HMDB51) is drawn once for all of them and clips of one recording go together (a draw in which
  some split has no clip is dropped).  The interval is Clopper-Pearson at the effective sample
  size that the bootstrap's standard error implies (``intervals.proportion_interval``, as for
  retrieval's R@k: it does not collapse to a point at 0% or 100%).  With disjoint test sets of
  equal size (UCF101 groups, ESC-50 folds) the mean equals the pooled accuracy, and with one clip
  per group this is about the binomial interval of the pooled clips;
- :func:`compare_probes`: the difference of two encoders' means on the same test clips with the
  percentile interval of a paired bootstrap of the same kind (the same group draws for both) and,
  per split, the exact McNemar test on the clips only one of them gets right.

The intervals cover the sampling of test clips given the trained classifiers, not the variance
of training itself.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from scipy.stats import binomtest

from avplug.evaluation.intervals import (
    DEFAULT_REPLICATES,
    bootstrap_weights,
    percentile_interval,
    proportion_interval,
    standard_error,
)

#: The accuracies every result holds, in reporting order.
METRICS = ("top1", "top5")
#: The 97.5% quantile of the standard normal distribution (two-sided 95% intervals).
Z95 = 1.959963984540054


def top_k_hits(probs: torch.Tensor, labels: torch.Tensor) -> dict[str, np.ndarray]:
    """Per sample, whether its label is the top-1 / among the top-min(5, classes) of ``probs [N, C]``."""
    labels = labels.long().view(-1, 1)
    ranked = probs.float().topk(min(5, probs.shape[1]), dim=1).indices
    return {"top1": (ranked[:, :1] == labels).any(1).numpy(), "top5": (ranked == labels).any(1).numpy()}


def wilson_interval(successes: int, n: int, z: float = Z95) -> list[float]:
    """Wilson score interval ``[low, high]`` of the proportion ``successes / n`` (95% for the default ``z``)."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"wilson_interval: need 0 <= successes <= n and n > 0, got {successes} of {n}")
    p, z2 = successes / n, z * z
    center = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return [0.0 if successes == 0 else center - half, 1.0 if successes == n else center + half]


def _bootstrap_means(runs: Sequence[Sequence[dict[str, Any]]], metric: str, seed: int = 0) -> list[np.ndarray]:
    """Bootstrap replicates ``[DEFAULT_REPLICATES]`` of the mean over splits of ``metric``, one array per run.

    ``runs[r][i]`` is the ``test_clips`` table of split ``i`` of run ``r``.  Every draw resamples the
    groups of all tables with replacement, the same draw for every run (paired); a split's accuracy
    is the group-count-weighted mean of its clips' hits.  Draws leaving a split without clips are NaN.
    """
    names = sorted({g for tables in runs for t in tables for g in t["group"]})
    index = {g: i for i, g in enumerate(names)}
    counts = bootstrap_weights(len(names), DEFAULT_REPLICATES, seed)
    means = []
    for tables in runs:
        per_split = []
        for t in tables:
            g = np.array([index[x] for x in t["group"]])
            hits = counts @ np.bincount(g, weights=np.asarray(t[metric], np.float64), minlength=len(names))
            clips = counts @ np.bincount(g, minlength=len(names))
            with np.errstate(invalid="ignore", divide="ignore"):
                per_split.append(np.where(clips > 0, hits / clips, np.nan))
        means.append(np.mean(per_split, axis=0))
    return means


def aggregate(results: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Per-split metrics and intervals, their mean, standard deviation (ddof = 1; 0 for one split) and
    the interval of the mean (see the module docstring; ``[None, None]`` with a single test group).

    ``results`` are :func:`~avplug.evaluation.downstream_protocols.run_split` outputs of one
    dataset, protocol and weights (checked).  The summary holds ``dataset``, ``protocol``,
    ``weights``, ``splits``, ``num_classes``, ``chance``, ``per_split`` (``{split: {top1, top5,
    top1_ci95, top5_ci95, num_test}}``), ``mean``, ``std``, ``mean_ci95`` (``{metric: [low,
    high]}``), ``num_test_clips`` and ``num_test_groups`` (distinct over splits), ``interval``
    (how the intervals were made) and ``test_clips`` (per split, for :func:`compare_probes`).
    """
    results = sorted(results, key=lambda r: r["split"])
    if not results:
        raise ValueError("aggregate: no split results")
    for key in ("dataset", "protocol", "weights", "num_classes"):
        values = {r[key] for r in results}
        if len(values) > 1:
            raise ValueError(f"aggregate: results mix several {key} values: {sorted(values)}")
    splits = [r["split"] for r in results]
    if len(set(splits)) != len(splits):
        raise ValueError(f"aggregate: a split appears twice in {splits}")
    tables = [r["test_clips"] for r in results]
    summary: dict[str, Any] = {k: results[0][k] for k in ("dataset", "protocol", "weights", "num_classes", "chance")}
    summary["splits"] = splits
    summary["per_split"] = {
        str(r["split"]): {**{k: r[k] for m in METRICS for k in (m, f"{m}_ci95")}, "num_test": r["num_test"]} for r in results
    }
    summary["mean"], summary["std"], summary["mean_ci95"] = {}, {}, {}
    for m in METRICS:
        values = np.array([r[m] for r in results], dtype=np.float64)
        summary["mean"][m] = float(values.mean())
        summary["std"][m] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    summary["num_test_clips"] = len({p for t in tables for p in t["path"]})
    summary["num_test_groups"] = len({g for t in tables for g in t["group"]})
    for m in METRICS:
        se = standard_error(_bootstrap_means([tables], m)[0])
        interval = proportion_interval(summary["mean"][m], se, summary["num_test_clips"], summary["num_test_groups"])
        summary["mean_ci95"][m] = list(interval)
    summary["interval"] = (
        f"95%: per split Wilson score over its test clips; mean over splits: Clopper-Pearson at the effective sample "
        f"size of a bootstrap over the {summary['num_test_groups']} test groups (recordings shared by clips), "
        f"{DEFAULT_REPLICATES} draws"
    )
    summary["test_clips"] = {str(r["split"]): r["test_clips"] for r in results}
    return summary


def compare_probes(a: dict[str, Any], b: dict[str, Any], metric: str = "top1") -> dict[str, Any]:
    """Is encoder ``a`` ahead of encoder ``b``?  Two :func:`aggregate` summaries on the same test clips.

    Returns ``dataset``, ``metric``, ``a`` and ``b`` (their weights), ``splits``, ``num_test`` (per
    split), ``mean_a``, ``mean_b``, ``difference`` (``mean_a - mean_b``), ``ci95`` (paired bootstrap
    over the test groups, the same draws for both; ``[None, None]`` with one group), ``a_ahead`` / ``b_ahead`` (the interval of the
    difference lies above / below 0), ``separated`` (``a``'s own interval of the mean lies above
    ``b``'s: ahead by more than both intervals) and ``per_split`` (``difference``, ``a_only`` and
    ``b_only``: clips only ``a`` / only ``b`` gets right, ``mcnemar_p``: the exact two-sided McNemar
    test on those).  ``ValueError`` when the dataset, splits or test clips differ.
    """
    if a["dataset"] != b["dataset"] or a["splits"] != b["splits"]:
        raise ValueError(f"compare_probes: {a['dataset']} splits {a['splits']} vs {b['dataset']} splits {b['splits']}")
    tables_a, tables_b, per_split = [], [], {}
    for s in map(str, a["splits"]):
        ta, tb = a["test_clips"][s], b["test_clips"][s]
        order = {p: i for i, p in enumerate(tb["path"])}
        if sorted(ta["path"]) != sorted(order):
            raise ValueError(f"compare_probes: split {s} tests other clips in the two results")
        tb = {k: [v[order[p]] for p in ta["path"]] for k, v in tb.items()}
        hits_a, hits_b = np.asarray(ta[metric], bool), np.asarray(tb[metric], bool)
        a_only, b_only = int((hits_a & ~hits_b).sum()), int((~hits_a & hits_b).sum())
        per_split[s] = {
            "difference": float(hits_a.mean() - hits_b.mean()), "a_only": a_only, "b_only": b_only,
            "mcnemar_p": float(binomtest(a_only, a_only + b_only).pvalue) if a_only + b_only else 1.0,
        }
        tables_a.append(ta)
        tables_b.append(tb)
    reps_a, reps_b = _bootstrap_means([tables_a, tables_b], metric)
    low, high = percentile_interval(reps_a - reps_b)
    mean_a, mean_b = float(np.mean([np.mean(t[metric]) for t in tables_a])), float(np.mean([np.mean(t[metric]) for t in tables_b]))
    return {
        "dataset": a["dataset"], "metric": metric, "a": a["weights"], "b": b["weights"], "splits": a["splits"],
        "num_test": {s: len(t["path"]) for s, t in zip(per_split, tables_a)},
        "mean_a": mean_a, "mean_b": mean_b, "difference": mean_a - mean_b, "ci95": [low, high],
        "a_ahead": low is not None and low > 0, "b_ahead": high is not None and high < 0,
        "separated": None not in (a["mean_ci95"][metric][0], b["mean_ci95"][metric][1])
        and a["mean_ci95"][metric][0] > b["mean_ci95"][metric][1],
        "per_split": per_split,
    }


def results_markdown(summary: dict[str, Any]) -> str:
    """A short Markdown table of :func:`aggregate`'s output (accuracies and intervals in percent)."""
    mean, std, ci = summary["mean"], summary["std"], summary["mean_ci95"]

    def pct(value: float) -> str:
        return f"{100 * value:.2f}"

    def interval(bounds: list[float | None]) -> str:
        return "n/a" if None in bounds else f"{100 * bounds[0]:.1f}-{100 * bounds[1]:.1f}"

    lines = [
        f"**{summary['dataset']}**, {summary['protocol']}, weights `{summary['weights']}`: {summary['num_classes']} classes "
        f"(chance {pct(summary['chance'])}%), {summary['num_test_clips']} test clips in {summary['num_test_groups']} groups",
        "",
        "| split | test clips | top-1 (%) | 95% interval | top-5 (%) | 95% interval |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for split, m in summary["per_split"].items():
        lines.append(
            f"| {split} | {m['num_test']} | {pct(m['top1'])} | {interval(m['top1_ci95'])} | {pct(m['top5'])} | {interval(m['top5_ci95'])} |"
        )
    lines.append(
        f"| mean ± std | {summary['num_test_clips']} | {pct(mean['top1'])} ± {pct(std['top1'])} | {interval(ci['top1'])} "
        f"| {pct(mean['top5'])} ± {pct(std['top5'])} | {interval(ci['top5'])} |"
    )
    lines += ["", f"Intervals {summary['interval']}."]
    return "\n".join(lines) + "\n"
