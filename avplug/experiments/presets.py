"""The paper's grids as override points, unfitted to any catalog (:mod:`avplug.experiments.catalog_fit`).

``table1`` is Table 1's three blocks (k in {1, 4, 8, 16, 32, 64} with w = M_n; k = 16 with w in
{64, ..., 2048}; w = k for k in {4, 16, 64}); ``table2`` is Table 2 (color jitter sigma, and the
l2-normalized loss with temperature tau); ``fig1-k`` and ``fig1-w`` are the curves of Figure 1a and
1b (1b ends at w = M_n); ``repro-cpu`` is the demo-scale reproduction of Figures 1a, 1c, 3a and
Table 1 (k in {1, 4, 16} with w = M_n, and w = k for k in {4, 16}), meant to be combined with
``--grid SEED=0,1,2``: every point then has 3 seeds, which the seed-aggregated report
(:mod:`avplug.experiments.seeds`) needs for an interval across seeds.  The k = 1 baseline is
``SAMPLER.NAME IIDSampler`` (i.i.d. snippets), as the paper's; larger k uses
``HierarchicalSampler``.  A preset may be combined with grid axes (their product, e.g. several
seeds) and restricted with :func:`avplug.experiments.grids.filter_points`.
"""
from __future__ import annotations

from typing import Any

from avplug.experiments import SweepError

PAPER_K = (1, 4, 8, 16, 32, 64)
PAPER_W = (64, 128, 256, 512, 1024, 2048)
PAPER_ADJACENT_K = (4, 16, 64)
PAPER_SIGMA_ROWS = ((1, 0.0), (16, 0.0), (1, 1.0), (16, 0.5), (16, 1.0))
PAPER_TAU = (0.07, 0.3)
#: repro-cpu: the k of Figure 1a / 3a that the demo catalog supports, and those with w = k (Figure 1c).
REPRO_CPU_K = (1, 4, 16)
REPRO_CPU_ADJACENT_K = (4, 16)

#: Preset name -> what it reproduces.
PRESETS = {
    "table1": "Table 1: k in {1,4,8,16,32,64} with w = M_n; k = 16 with w in {64,...,2048}; w = k for k in {4,16,64}",
    "table2": "Table 2: color jitter sigma rows (k, sigma) and the l2-normalized loss with tau in {0.07, 0.3} (k = 16)",
    "fig1-k": "Figure 1a: discrepancy against k in {1,4,8,16,32,64}, w = M_n",
    "fig1-w": "Figure 1b: discrepancy against w in {64,...,2048} and w = M_n, k = 16",
    "repro-cpu": "Figures 1a, 1c, 3a and Table 1 at demo scale: k in {1,4,16} with w = M_n, and w = k for k in {4,16}; "
                 "combine with --grid SEED=0,1,2 (3 seeds per point)",
}


def sampler_point(k: int, w: int = 0) -> dict[str, Any]:
    """The paper's sampling policy for (k, w): IIDSampler for k = 1, else HierarchicalSampler; w 0 = M_n."""
    name = "IIDSampler" if k == 1 else "HierarchicalSampler"
    return {"SAMPLER.K": k, "SAMPLER.NAME": name, "SAMPLER.WINDOW": w}


def preset_points(name: str) -> list[dict[str, Any]]:
    """The paper's grid ``name`` (a key of :data:`PRESETS`) as override dicts, unfitted to any catalog."""
    if name == "fig1-k":
        return [sampler_point(k) for k in PAPER_K]
    if name == "fig1-w":
        return [sampler_point(16, w) for w in PAPER_W] + [sampler_point(16)]
    if name == "table1":
        points = [sampler_point(k) for k in PAPER_K] + [sampler_point(16, w) for w in PAPER_W]
        return points + [sampler_point(k, k) for k in PAPER_ADJACENT_K]
    if name == "repro-cpu":
        return [sampler_point(k) for k in REPRO_CPU_K] + [sampler_point(k, k) for k in REPRO_CPU_ADJACENT_K]
    if name == "table2":
        points = [{**sampler_point(k), "INPUT.VIDEO.COLOR_JITTER": sigma} for k, sigma in PAPER_SIGMA_ROWS]
        return points + [
            {**sampler_point(16), "INPUT.VIDEO.COLOR_JITTER": 0.0, "LOSS.NORMALIZE": True, "LOSS.TEMPERATURE": tau}
            for tau in PAPER_TAU
        ]
    raise SweepError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
