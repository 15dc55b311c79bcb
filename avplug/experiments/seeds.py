"""Runs that differ only in their seed, aggregated per point: the mean over seeds and its interval.

A *point* (:class:`Point`) is the set of runs whose settings (the resolved ``config.yaml``) agree on
every key but ``SEED`` and ``OUTPUT_DIR``, baselines apart from pretrained runs: ``k4_w0_seed0``,
``k4_w0_seed1`` and ``k4_w0_seed2`` are the point ``k4_w0``.  :func:`group_points` forms them and
gives each figure of :data:`FIGURES` an :class:`Estimate`:

- from n >= 2 seeds that have the figure: the mean over seeds and the t-interval across seeds,
  mean +- t_{n-1} * s / sqrt(n) at level :data:`~avplug.evaluation.intervals.CONFIDENCE` (s the
  standard deviation over seeds, ddof 1; t = 4.30 for n = 3, 12.71 for n = 2).  Each seed is
  trained and measured on its own, so the interval covers the variance of training (weights, data
  order) and of the measurement together;
- from one seed: the run's own interval (held-out figures: the title bootstrap of
  :mod:`avplug.evaluation.discrepancy`; probes: the test-group bootstrap of
  :func:`avplug.evaluation.downstream_statistics.aggregate`), which leaves out the variance of
  training; the final loss has none.

Figures: ``final_loss`` (the mean of the logged losses of the run's last epoch: a logged loss is
one minibatch's), ``KL(S-||S!=)``, ``gap``, ``v2a_R@1`` and ``v2a_within_title`` on held-out titles,
and the mean top-1 (a fraction) of each downstream dataset of :data:`DATASETS`.  Every estimate
carries its chance level (the loss of an embedding whose scores are all equal, log(2B - 1) for Eq. 1
with a global batch B; 0 for a divergence; the figures' own otherwise) and its sample size.
:func:`loss_band` is Figure 3's mean loss curve of a point with its band across seeds;
:func:`by_kind` sorts points into Table 1's blocks and :func:`find_point` finds one by (k, w).

A run is any object with the attributes of :class:`SeedRun` (``RunInfo`` of
:mod:`avplug.experiments.run_folders` has them): the reports import this module, not the other way
round.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from scipy import stats

from avplug.evaluation.intervals import CONFIDENCE

#: Downstream datasets, in the paper's column order.
DATASETS = ("HMDB51", "ESC50", "UCF101")
#: Held-out figures aggregated over seeds (keys of ``discrepancy.json``).
HELDOUT_FIGURES = ("KL(S-||S!=)", "gap", "v2a_R@1", "v2a_within_title")
#: Every aggregated figure: the final loss, the held-out figures, the probes' top-1.
FIGURES = ("final_loss", *HELDOUT_FIGURES, *DATASETS)
#: Keys of the cfg that differ between the seeds of one point.
SEED_KEYS = ("SEED", "OUTPUT_DIR")
#: Statuses whose runs are left out of the points (no final numbers yet, or none at all).
UNFINISHED = ("invalid", "planned", "running", "failed")


class SeedRun(Protocol):
    """What a run must offer (``RunInfo`` does): its settings, held-out figures, probes and losses."""

    name: str
    status: str
    baseline: bool
    cfg: dict[str, Any]
    heldout: dict[str, Any]
    downstream: dict[str, dict[str, Any]]
    losses: list[tuple[int, float]]
    steps_per_epoch: float | None


@dataclass(frozen=True)
class Estimate:
    """One figure of a point: ``value`` with its 95% interval [``low``, ``high``] (``None`` where
    there is none), how the interval was made (``interval``: "t over seeds", "run's own" or
    "none"), the per-seed ``values``, the ``chance`` level and the ``sample`` size in words."""

    value: float | None
    low: float | None = None
    high: float | None = None
    interval: str = "none"
    values: tuple[float, ...] = ()
    chance: float | None = None
    sample: str = ""

    @property
    def seeds(self) -> int:
        return len(self.values)


@dataclass
class Point:
    """Runs that differ only in ``SEED`` (:func:`group_points`), with an :class:`Estimate` per figure."""

    name: str
    runs: list[Any]
    estimates: dict[str, Estimate] = field(default_factory=dict)

    @property
    def first(self) -> Any:
        return self.runs[0]

    @property
    def baseline(self) -> bool:
        return bool(self.first.baseline)

    @property
    def k(self) -> int | None:
        return _int(self.first.cfg.get("SAMPLER.K"))

    @property
    def w(self) -> int | None:
        return _int(self.first.cfg.get("SAMPLER.WINDOW"))

    @property
    def sampler(self) -> str:
        return str(self.first.cfg.get("SAMPLER.NAME", ""))

    @property
    def plain(self) -> bool:
        """A sampling-ablation point: pretrained, no color jitter, the unnormalized loss."""
        cfg = self.first.cfg
        return not self.baseline and not float(cfg.get("INPUT.VIDEO.COLOR_JITTER") or 0.0) and not cfg.get("LOSS.NORMALIZE")

    @property
    def seeds(self) -> int:
        return len(self.runs)


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _count(value: Any) -> str:
    """A sample size as written: ``460`` (also from ``460.0``, as ``metrics.jsonl`` stores it), ``?`` when unknown."""
    number = finite(value)
    return "?" if number is None else str(int(number)) if number.is_integer() else f"{number:g}"


def finite(value: Any) -> float | None:
    """``float(value)`` when it is a finite number, else None (missing, text, NaN, infinity)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


# ---------------------------------------------------------------------------------------------
# Intervals across seeds
# ---------------------------------------------------------------------------------------------
def t_quantile(n: int, level: float = CONFIDENCE) -> float:
    """t_{n-1} at (1 + level) / 2: 4.303 for n = 3 at 95%."""
    return float(stats.t.ppf((1 + level) / 2, n - 1))


def across_seeds(values: Sequence[float], level: float = CONFIDENCE) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of ``values`` (n >= 2) +- t_{n-1} * s / sqrt(n)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        raise ValueError(f"across_seeds: {x.size} value(s), need 2 or more")
    mean = float(x.mean())
    half = t_quantile(x.size, level) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return mean, mean - half, mean + half


# ---------------------------------------------------------------------------------------------
# One run's figures
# ---------------------------------------------------------------------------------------------
def last_epoch_losses(run: SeedRun) -> list[float]:
    """The logged losses of the run's last epoch (only its last logged loss when the epoch length
    is unknown; none without loss records)."""
    if not run.losses:
        return []
    last, span = run.losses[-1][0], run.steps_per_epoch
    return [v for s, v in run.losses if span and s > last - span] or [run.losses[-1][1]]


def run_estimate(run: SeedRun, figure: str) -> Estimate:
    """``figure`` of one run with its own interval (none for the loss); value ``None`` when missing."""
    if figure == "final_loss":
        tail = last_epoch_losses(run)
        batch = _int(run.cfg.get("SOLVER.BATCH_SIZE"))
        return Estimate(float(np.mean(tail)) if tail else None, chance=math.log(2 * batch - 1) if batch else None,
                        sample=f"mean of the {len(tail)} logged step(s) of the last epoch")
    if figure in DATASETS:
        agg = run.downstream.get(figure) or {}
        low, high = (list(agg.get("mean_ci95", {}).get("top1") or []) + [None, None])[:2]
        return Estimate(finite(agg.get("mean", {}).get("top1")), finite(low), finite(high), "run's own",
                        chance=finite(agg.get("chance")), sample=f"{_count(agg.get('num_test_clips'))} test clips")
    h = run.heldout
    return Estimate(finite(h.get(figure)), finite(h.get(f"{figure}_ci_low")), finite(h.get(f"{figure}_ci_high")),
                    "run's own", chance=finite(h.get(f"{figure}_chance")),
                    sample=f"{_count(h.get('num_snippets'))} snippets of {_count(h.get('num_titles'))} held-out titles")


def point_estimate(runs: Sequence[SeedRun], figure: str) -> Estimate:
    """``figure`` of a point: the t-interval across the seeds that have it, or one seed's own."""
    own = [run_estimate(run, figure) for run in runs]
    have = [e for e in own if e.value is not None]
    chances = {e.chance for e in have}
    chance = chances.pop() if len(chances) == 1 else None
    samples = " / ".join(dict.fromkeys(e.sample for e in have))
    if not have:
        return Estimate(None)
    if len(have) == 1:
        e = have[0]
        interval = e.interval if e.low is not None else "none"
        return Estimate(e.value, e.low, e.high, interval, (e.value,), chance, samples)
    values = tuple(float(e.value) for e in have)
    mean, low, high = across_seeds(values)
    return Estimate(mean, low, high, "t over seeds", values, chance, samples)


# ---------------------------------------------------------------------------------------------
# Points
# ---------------------------------------------------------------------------------------------
def point_key(run: SeedRun) -> str:
    """The run's settings without :data:`SEED_KEYS`, as a canonical string (plus the baseline flag);
    a run without known settings is a point of its own."""
    settings = {k: v for k, v in run.cfg.items() if k not in SEED_KEYS} or {"run": run.name}
    return json.dumps([bool(run.baseline), settings], sort_keys=True, default=str)


def point_name(names: Sequence[str]) -> str:
    """The runs' common name without its seed part: ``k4_w0_seed1`` -> ``k4_w0``."""
    stripped = {re.sub(r"_seed-?[0-9]+(?=_|-|$)", "", n) for n in names}
    return stripped.pop() if len(stripped) == 1 else names[0]


def group_points(runs: Sequence[SeedRun]) -> tuple[list[Point], list[str]]:
    """Points of the finished runs (in order of first appearance) with their estimates, and notes
    (runs left out as unfinished; points with fewer than 3 seeds)."""
    notes = []
    left_out = [r.name for r in runs if r.status in UNFINISHED]
    if left_out:
        notes.append(f"left out of the seed aggregation (not finished): {', '.join(left_out)}")
    groups: dict[str, list[SeedRun]] = {}
    for run in runs:
        if run.status not in UNFINISHED:
            groups.setdefault(point_key(run), []).append(run)
    points = []
    for members in groups.values():
        point = Point(point_name([r.name for r in members]), list(members))
        point.estimates = {figure: point_estimate(members, figure) for figure in FIGURES}
        points.append(point)
    few = [f"{p.name} ({p.seeds})" for p in points if p.seeds < 3]
    if few:
        notes.append(f"fewer than 3 seeds: {', '.join(few)}; a single seed shows its run's own interval, "
                     "which leaves out the variance of training")
    return points, notes


def loss_band(point: Point) -> tuple[list[int], list[float], list[float] | None, list[float] | None]:
    """``(steps, mean, low, high)``: the point's loss curve averaged over its seeds at the steps
    every seed logged, with the t-interval across seeds per step (``None`` bands for one seed)."""
    curves = [dict(r.losses) for r in point.runs if r.losses]
    if not curves:
        return [], [], None, None
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    if len(curves) == 1:
        return steps, [curves[0][s] for s in steps], None, None
    rows = [across_seeds([c[s] for c in curves]) for s in steps]
    return steps, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def find_point(points: Sequence[Point], k: int, w: int | None) -> Point | None:
    """The plain point with ``k`` and window ``w`` (0: M_n; ignored for k = 1, where IIDSampler is
    preferred, the paper's baseline); with several, the one with the most seeds."""
    found = [p for p in points if p.plain and p.k == k and (k == 1 or p.w == w)]
    found.sort(key=lambda p: (k == 1 and p.sampler != "IIDSampler", -p.seeds))
    return found[0] if found else None


def by_kind(points: Sequence[Point]) -> Mapping[str, list[Point]]:
    """Points by Table 1 block: ``baseline``, ``w=M_n`` (k = 1 included), ``window``, ``w=k``; each by (k, w)."""
    out: dict[str, list[Point]] = {"baseline": [], "w=M_n": [], "window": [], "w=k": []}
    for p in points:
        if p.baseline:
            out["baseline"].append(p)
        elif p.plain and p.k is not None and p.w is not None:
            block = "w=M_n" if p.k == 1 or p.w == 0 else "w=k" if p.w == p.k else "window"
            out[block].append(p)
    for block in out.values():
        block.sort(key=lambda p: (p.k or 0, p.w or 0, p.name))
    return out
