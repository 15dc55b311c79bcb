"""The report's figures: Figure 1 (discrepancy against k and w) and Figure 3 (loss against step).

:func:`k_series` and :func:`w_series` are Figure 1's curves of plain runs (final measures of each
run), :func:`loss_groups` Figure 3's loss curves; each figure has a PNG (matplotlib's Agg backend,
:func:`pyplot`) and a table of its numbers.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from avplug.evaluation.discrepancy import MEASURE_KEYS
from avplug.experiments.report_tables import MISSING, Table, csv_number, is_plain
from avplug.experiments.run_folders import RunInfo


@dataclass
class Series:
    """One curve: a label and its points ``(x, x label, run)``."""

    label: str
    points: list[tuple[float, str, RunInfo]]


def k_series(runs: Sequence[RunInfo]) -> list[Series]:
    """Figure 1a / 3a: w = M_n against k (k = 1 included); Figure 1c: w = k against k."""
    plain = [r for r in runs if is_plain(r) and r.k is not None and r.w is not None]
    out = []
    no_window = sorted((r for r in plain if r.w == 0 or r.k == 1), key=lambda r: (r.k, r.name))
    if no_window:
        out.append(Series("w = M_n", [(float(r.k), str(r.k), r) for r in no_window]))
    adjacent = sorted((r for r in plain if r.k != 1 and r.w == r.k), key=lambda r: (r.k, r.name))
    if adjacent:
        out.append(Series("w = k", [(float(r.k), str(r.k), r) for r in adjacent]))
    return out


def w_series(runs: Sequence[RunInfo]) -> list[Series]:
    """Figure 1b / 3b: for each k with windowed runs (w not in {0, k}), w ascending, then w = M_n."""
    plain = [r for r in runs if is_plain(r) and r.k is not None and r.w is not None and r.k != 1]
    out = []
    for k in sorted({r.k for r in plain if r.w not in (0, r.k)}):
        windowed = sorted((r for r in plain if r.k == k and r.w not in (0, k)), key=lambda r: (r.w, r.name))
        top = max(r.w for r in windowed)
        points = [(float(r.w), str(r.w), r) for r in windowed]
        points += [(float(2 * top), "M_n", r) for r in plain if r.k == k and r.w == 0]
        out.append(Series(f"k = {k}", points))
    return out


def measure_table(title: str, series: Sequence[Series], axis: str) -> Table:
    table = Table(title, ["series", axis, "run", *MEASURE_KEYS])
    table.csv_columns = ["series", axis, "run", *MEASURE_KEYS]
    missing = []
    for s in series:
        for _, label, run in s.points:
            d = run.discrepancy or {}
            if run.discrepancy is None:
                missing.append(run.name)
            table.rows.append([s.label, label, run.name, *[MISSING if d.get(m) is None else f"{d[m]:.4f}" for m in MEASURE_KEYS]])
            table.csv_rows.append([s.label, label, run.name, *[csv_number(d.get(m)) for m in MEASURE_KEYS]])
    if missing:
        table.notes.append(f"no discrepancy measures for {', '.join(missing)}")
    table.notes.append("final values of each run (its discrepancy.json, else the last discrepancy record of metrics.jsonl); "
                       "gap = KL(S!=||S+) - KL(S-||S+)")
    return table


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_discrepancy(series: Sequence[Series], axis: str, path: Path, title: str) -> Path | None:
    """Two panels, KL(S-||S!=) and the gap, against ``axis`` (log2 scale); None if no point has measures."""
    drawable = [s for s in series if any(run.discrepancy for _, _, run in s.points)]
    if not drawable:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    ticks: dict[float, str] = {}
    for s in drawable:
        pts = [(x, lab, r.discrepancy) for x, lab, r in s.points if r.discrepancy]
        for ax, measure in zip(axes, ("KL(S-||S!=)", "gap")):
            xy = [(x, d[measure]) for x, _, d in pts if d.get(measure) is not None]
            if xy:
                ax.plot([p[0] for p in xy], [p[1] for p in xy], marker="o", label=s.label)
        ticks.update({x: lab for x, lab, _ in pts})
    for ax, measure in zip(axes, ("KL(S- || S!=)", "KL(S!= || S+) - KL(S- || S+)")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(ticks))
        ax.set_xticklabels(list(ticks.values()))
        ax.minorticks_off()
        ax.set_xlabel(axis)
        ax.set_ylabel(measure)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def loss_groups(runs: Sequence[RunInfo]) -> dict[str, list[tuple[str, RunInfo]]]:
    """Figure 3 groups: "k" (w = M_n, each k), "w" (each windowed k: its w values and M_n), "adjacent" (w = k)."""
    groups: dict[str, list[tuple[str, RunInfo]]] = {"k": [], "w": [], "adjacent": []}
    for s in k_series(runs):
        for _, label, run in s.points:
            name = "k" if s.label == "w = M_n" else "adjacent"
            iid = " (iid)" if run.sampler == "IIDSampler" else ""
            groups[name].append((f"k = {label}{iid}" + (", w = k" if name == "adjacent" else ""), run))
    for s in w_series(runs):
        groups["w"] += [(f"{s.label}, w = {label}", run) for _, label, run in s.points]
    return groups


def plot_losses(curves: Sequence[tuple[str, RunInfo]], path: Path, title: str) -> Path | None:
    """Loss against step, one line per run; None if no run has loss records."""
    drawable = [(label, run) for label, run in curves if run.losses]
    if not drawable:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, run in drawable:
        ax.plot([s for s, _ in run.losses], [v for _, v in run.losses], label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("pretraining loss (Eq. 1)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def loss_curves_table(groups: dict[str, list[tuple[str, RunInfo]]]) -> Table:
    table = Table("Figure 3: pretraining loss", ["figure", "curve", "run", "steps", "first loss", "final loss", "min loss"])
    table.csv_columns = ["figure", "curve", "run", "step", "loss"]
    missing = []
    for group, curves in groups.items():
        for label, run in curves:
            losses = [v for _, v in run.losses]
            if not losses:
                missing.append(run.name)
            shown = [str(run.losses[-1][0])] + [f"{v:.4f}" for v in (losses[0], losses[-1], min(losses))] if losses else [MISSING] * 4
            table.rows.append([f"fig3_{group}", label, run.name, *shown])
            table.csv_rows += [[f"fig3_{group}", label, run.name, s, v] for s, v in run.losses]
    if missing:
        table.notes.append(f"no loss records (metrics.jsonl) for {', '.join(missing)}")
    return table
