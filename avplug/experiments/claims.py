"""The paper's sampling claims, each given a verdict mechanically from the intervals of two points.

A :class:`Claim` says that a figure of point A is below (``"<"``) or above (``">"``) the same
figure of point B, points named by (k, w) with w = 0 for M_n (:func:`avplug.experiments.seeds.
find_point`).  :func:`verdict` compares the two 95% intervals of :mod:`avplug.experiments.seeds`
(across seeds, or a single seed's own):

- ``reproduced``: the intervals are separated in the paper's direction (A's upper end below B's
  lower end for ``"<"``);
- ``opposite``: separated the other way;
- ``not resolved``: they overlap, or one has no interval;
- ``not measured``: a point, or its figure, is missing.

Separated intervals is the issue's rule ("a difference counts only when it is larger than the
intervals"); it is stricter than the interval of the difference excluding 0.  :data:`CLAIMS` are
Figure 1a (k = 16 below k = 1 in KL(S- || S!=) and in the gap), Figure 1c (w = k below w = M_n in
KL(S- || S!=) at k = 4 and 16), Figure 3a (k = 1's loss falls fastest: its final loss below
k = 16's) and Table 1 (k in {4, 16} with w = M_n above k = 1 on each probe; w = k below w = M_n at
the same k), with the paper's Table 1 numbers (movies) beside the probe claims.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from avplug.evaluation.intervals import format_estimate
from avplug.experiments.seeds import DATASETS, Estimate, Point, find_point

REPRODUCED, OPPOSITE, NOT_RESOLVED, NOT_MEASURED = "reproduced", "opposite", "not resolved", "not measured"
VERDICTS = (REPRODUCED, OPPOSITE, NOT_RESOLVED, NOT_MEASURED)

#: The paper's Table 1 (movies), top-1 % as (HMDB51, ESC50, UCF101), for the points of the claims.
PAPER_TABLE1 = {
    (1, 0): (60.32, 86.50, 85.69), (4, 0): (61.37, 89.91, 85.38), (16, 0): (62.92, 88.33, 86.30),
    (4, 4): (60.19, 88.00, 84.66), (16, 16): (56.86, 88.75, 82.71),
}


@dataclass(frozen=True)
class Claim:
    """``figure`` at point ``a`` is ``direction`` (``"<"`` or ``">"``) the same figure at point ``b``."""

    source: str
    text: str
    figure: str
    a: tuple[int, int]
    b: tuple[int, int]
    direction: str

    def paper(self) -> str:
        """The paper's numbers for a probe claim (``"62.92 vs 60.32"``), else ``""``."""
        if self.figure not in DATASETS or self.a not in PAPER_TABLE1 or self.b not in PAPER_TABLE1:
            return ""
        i = DATASETS.index(self.figure)
        return f"{PAPER_TABLE1[self.a][i]:.2f} vs {PAPER_TABLE1[self.b][i]:.2f}"


def _label(kw: tuple[int, int]) -> str:
    k, w = kw
    return "k = 1" if k == 1 else f"k = {k}, w = {'M_n' if w == 0 else w}"


def _claims() -> tuple[Claim, ...]:
    out = [
        Claim("Figure 1a", "KL(S-||S!=) is lower at k = 16 than at k = 1", "KL(S-||S!=)", (16, 0), (1, 0), "<"),
        Claim("Figure 1a", "the gap is lower at k = 16 than at k = 1", "gap", (16, 0), (1, 0), "<"),
    ]
    out += [Claim("Figure 1c", f"adjacent snippets (w = k) give a lower KL(S-||S!=) than no window at k = {k}",
                  "KL(S-||S!=)", (k, k), (k, 0), "<") for k in (4, 16)]
    out.append(Claim("Figure 3a", "k = 1's loss falls fastest: its final loss is below k = 16's", "final_loss",
                     (1, 0), (16, 0), "<"))
    out += [Claim("Table 1", f"k = {k} (w = M_n) beats k = 1 on {ds}", ds, (k, 0), (1, 0), ">")
            for k in (4, 16) for ds in DATASETS]
    out += [Claim("Table 1", f"w = k is worse than no window on {ds} at k = {k}", ds, (k, k), (k, 0), "<")
            for k in (4, 16) for ds in DATASETS]
    return tuple(out)


#: The claims a demo-scale reproduction checks, in the paper's order.
CLAIMS = _claims()


def verdict(a: Estimate | None, b: Estimate | None, direction: str) -> str:
    """:data:`REPRODUCED` / :data:`OPPOSITE` / :data:`NOT_RESOLVED` / :data:`NOT_MEASURED` for the
    claim "a ``direction`` b" from the two intervals (see the module docstring)."""
    if direction not in ("<", ">"):
        raise ValueError(f"verdict: direction {direction!r}, expected '<' or '>'")
    if a is None or b is None or a.value is None or b.value is None:
        return NOT_MEASURED
    if None in (a.low, a.high, b.low, b.high):
        return NOT_RESOLVED
    if a.high < b.low:
        return REPRODUCED if direction == "<" else OPPOSITE
    if a.low > b.high:
        return REPRODUCED if direction == ">" else OPPOSITE
    return NOT_RESOLVED


@dataclass(frozen=True)
class ClaimResult:
    """A claim, the two points' estimates (``None`` when a point is missing), their names and the verdict."""

    claim: Claim
    a: Estimate | None
    b: Estimate | None
    a_name: str
    b_name: str
    verdict: str


def check_claims(points: Sequence[Point], claims: Sequence[Claim] = CLAIMS) -> list[ClaimResult]:
    """Each claim's verdict on ``points``."""
    results = []
    for claim in claims:
        pa, pb = find_point(points, *claim.a), find_point(points, *claim.b)
        ea = pa.estimates.get(claim.figure) if pa else None
        eb = pb.estimates.get(claim.figure) if pb else None
        results.append(ClaimResult(claim, ea, eb, pa.name if pa else f"({_label(claim.a)}: no run)",
                                   pb.name if pb else f"({_label(claim.b)}: no run)", verdict(ea, eb, claim.direction)))
    return results


def _shown(e: Estimate | None, scale: float) -> str:
    if e is None or e.value is None:
        return "-"
    low, high = (None, None) if e.low is None else (scale * e.low, scale * e.high)
    return f"{format_estimate(scale * e.value, low, high, digits=2 if scale == 100 else 3)} (n = {e.seeds})"


def claims_markdown(results: Sequence[ClaimResult]) -> str:
    """The verdicts as a Markdown section: one row per claim with both estimates (probes in %), the
    difference A - B, the paper's numbers where it has them, and a count of each verdict."""
    lines = ["**Claims: verdicts from the intervals**", "",
             "| source | claim | A | B | A (95% interval) | B (95% interval) | A - B | paper | verdict |",
             "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for r in results:
        scale = 100.0 if r.claim.figure in DATASETS else 1.0
        diff = "-" if r.verdict == NOT_MEASURED else f"{scale * (r.a.value - r.b.value):+.{2 if scale == 100 else 3}f}"
        cells = [r.claim.source, r.claim.text, r.a_name, r.b_name, _shown(r.a, scale), _shown(r.b, scale), diff,
                 r.claim.paper() or "-", f"**{r.verdict}**"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    counts = {v: sum(r.verdict == v for r in results) for v in VERDICTS}
    lines += ["", "- " + ", ".join(f"{n} {v}" for v, n in counts.items() if n),
              "- reproduced / opposite: the two 95% intervals are separated, in the paper's direction / the other "
              "way; not resolved: they overlap (or one has none); intervals are t-intervals across seeds "
              "(n = the seeds with the figure), or a single seed's own interval (without the variance of training)",
              "- probes: top-1 % with the runs' evaluation recipes; the paper's numbers: its Table 1 (movies, fine-tuned)"]
    return "\n".join(lines) + "\n"
