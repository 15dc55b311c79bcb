"""The seed-aggregated part of a report: runs that differ only in SEED as one point, and the claims.

Points and their estimates come from :mod:`avplug.experiments.seeds` (mean over seeds, 95%
t-interval across seeds, a single seed's own interval), verdicts from
:mod:`avplug.experiments.claims`.  :func:`seed_sections` writes ``claims.md/.csv``,
``seeds_table1.csv``, ``seeds_measures.csv``, ``seeds_fig1a.png``, ``seeds_fig1c.png`` and
``seeds_fig3a.png/.csv``.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from avplug.evaluation.intervals import format_estimate
from avplug.experiments.claims import ClaimResult, check_claims, claims_markdown
from avplug.experiments.report_figures import pyplot
from avplug.experiments.report_tables import MISSING, Table, csv_number
from avplug.experiments.run_folders import RunInfo
from avplug.experiments.seeds import (
    DATASETS,
    HELDOUT_FIGURES,
    Estimate,
    Point,
    by_kind,
    group_points,
    loss_band,
    t_quantile,
)

#: Column headers of the seed-aggregated figures.
SEED_HEADERS = {"final_loss": "final loss", "KL(S-||S!=)": "KL(S-||S!=)", "gap": "gap", "v2a_R@1": "v2a R@1",
                "v2a_within_title": "v2a within-title", **{d: d for d in DATASETS}}


def _point_k(p: Point) -> str:
    return MISSING if p.baseline or p.k is None else str(p.k)


def _point_w(p: Point) -> str:
    return MISSING if p.baseline or p.k in (None, 1) or p.w is None else "M_n" if p.w == 0 else str(p.w)


def _cell(e: Estimate, scale: float, digits: int, seeds: int) -> str:
    if e.value is None:
        return MISSING
    low, high = (None, None) if e.low is None else (scale * e.low, scale * e.high)
    text = format_estimate(scale * e.value, low, high, digits=digits)
    return text if e.seeds == seeds else f"{text} (n = {e.seeds})"


def seed_table(title: str, points: Mapping[str, Sequence[Point]], figures: Sequence[str], *, scale: float = 1.0,
               digits: int = 3) -> Table:
    """Points (by block) against ``figures``: mean over seeds [95% interval], a chance row, sample sizes in the notes.

    The CSV is long: one row per point and figure with mean, interval, its kind, chance, sample
    size, the per-seed values and the runs.
    """
    table = Table(title, ["point", "k", "w", "seeds", "interval", *[SEED_HEADERS[f] for f in figures]])
    table.csv_columns = ["point", "block", "k", "w", "figure", "seeds", "mean", "ci_low", "ci_high", "interval",
                         "chance", "sample", "values", "runs"]
    chance: dict[str, set] = {f: set() for f in figures}
    samples: dict[str, set] = {f: set() for f in figures}
    for block, members in points.items():
        for p in members:
            kind = f"t, {p.seeds} seeds" if p.seeds > 1 else "run's own"
            table.rows.append([p.name, _point_k(p), _point_w(p), str(p.seeds), kind,
                               *[_cell(p.estimates[f], scale, digits, p.seeds) for f in figures]])
            for f in figures:
                e = p.estimates[f]
                if e.value is not None:
                    chance[f].add(e.chance)
                    samples[f].add(e.sample)
                table.csv_rows.append([p.name, block, _point_k(p), _point_w(p), f, e.seeds, csv_number(e.value, 8),
                                       csv_number(e.low, 8), csv_number(e.high, 8), e.interval, csv_number(e.chance, 8), e.sample,
                                       ";".join(f"{v:.6g}" for v in e.values), ";".join(r.name for r in p.runs)])
    if table.rows:
        table.rows.append(["chance", "", "", "", "", *[
            MISSING if len(chance[f]) != 1 or None in chance[f] else f"{scale * next(iter(chance[f])):.{digits}f}"
            for f in figures]])
    table.notes = [f"{SEED_HEADERS[f]}: {'; '.join(sorted(samples[f]))}" for f in figures if samples[f]]
    table.notes.append(f"mean over seeds [95% t-interval across seeds, t = {t_quantile(3):.2f} for 3 seeds]; "
                       "a single seed shows its run's own interval; (n = ...) where fewer seeds have the figure")
    return table


def _errorbar(ax, xs: Sequence[float], estimates: Sequence[Estimate], label: str) -> None:
    pts = [(x, e) for x, e in zip(xs, estimates) if e.value is not None]
    if not pts:
        return
    values = [e.value for _, e in pts]
    yerr = [[0.0 if e.low is None else e.value - e.low for _, e in pts], [0.0 if e.high is None else e.high - e.value for _, e in pts]]
    ax.errorbar([x for x, _ in pts], values, yerr=yerr, marker="o", capsize=4, label=label)


def plot_seed_discrepancy(series: Sequence[tuple[str, Sequence[Point]]], path: Path, title: str) -> Path | None:
    """KL(S-||S!=) and the gap against k (log2), one line per series, 95% intervals as error bars,
    0 (chance) dashed; None when no point has the measures."""
    if not any(p.estimates["gap"].value is not None for _, pts in series for p in pts):
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    ks = sorted({p.k for _, pts in series for p in pts})
    for i, (label, pts) in enumerate(series):
        xs = [p.k * 1.06**i for p in pts]  # side by side, not on top of each other
        for ax, figure in zip(axes, ("KL(S-||S!=)", "gap")):
            _errorbar(ax, xs, [p.estimates[figure] for p in pts], label)
    samples = {p.estimates["gap"].sample for _, pts in series for p in pts if p.estimates["gap"].value is not None}
    for ax, name in zip(axes, ("KL(S- || S!=)", "gap = KL(S!= || S+) - KL(S- || S+)")):
        ax.axhline(0.0, color="gray", linestyle="--", linewidth=1, label="chance (0)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks)
        ax.set_xticklabels([str(k) for k in ks])
        ax.minorticks_off()
        ax.set_xlabel("k")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{title}\nmean over seeds, 95% interval; {'; '.join(sorted(samples))}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_seed_losses(points: Sequence[Point], path: Path, title: str) -> tuple[Path | None, Table]:
    """Loss against step per point, mean over seeds with its 95% band across seeds (none for one
    seed), chance log(2B - 1) dashed; returns the PNG (None without loss records) and the curves' table."""
    table = Table(title, ["point", "seeds", "steps"])
    table.csv_columns = ["point", "step", "mean", "ci_low", "ci_high", "seeds"]
    curves = [(p, *loss_band(p)) for p in points]
    curves = [c for c in curves if c[1]]
    for p, steps, mean, low, high in curves:
        seeds = sum(bool(r.losses) for r in p.runs)
        table.csv_rows += [[p.name, s, csv_number(m, 8), csv_number(lo, 8), csv_number(hi, 8), seeds]
                           for s, m, lo, hi in zip(steps, mean, low or [None] * len(steps), high or [None] * len(steps))]
    if not curves:
        return None, table
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for p, steps, mean, low, high in curves:
        line = ax.plot(steps, mean, label=f"{p.name} ({sum(bool(r.losses) for r in p.runs)} seeds)")[0]
        if low is not None:
            ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2)
    chance = {p.estimates["final_loss"].chance for p, *_ in curves} - {None}
    if len(chance) == 1:
        ax.axhline(chance.pop(), color="gray", linestyle="--", linewidth=1, label="chance log(2B - 1)")
    ax.set_xlabel("step")
    ax.set_ylabel("pretraining loss (Eq. 1)")
    ax.set_title(f"{title}\nmean over seeds, 95% band across seeds", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path, table


def _claims_csv(results: Sequence[ClaimResult]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["source", "claim", "figure", "direction", "a", "a_mean", "a_ci_low", "a_ci_high", "a_seeds",
                     "b", "b_mean", "b_ci_low", "b_ci_high", "b_seeds", "paper", "verdict"])
    for r in results:
        sides = [x for e, name in ((r.a, r.a_name), (r.b, r.b_name)) for x in (
            name, *([csv_number(e.value, 8), csv_number(e.low, 8), csv_number(e.high, 8), e.seeds] if e else ["", "", "", 0]))]
        writer.writerow([r.claim.source, r.claim.text, r.claim.figure, r.claim.direction, *sides[:5], *sides[5:],
                         r.claim.paper(), r.verdict])
    return buf.getvalue()


def seed_sections(runs: Sequence[RunInfo], out: Path, files: dict[str, Path]) -> list[str]:
    """The seed-aggregated part of the report (claims, Table 1, measures, Figures 1a, 1c, 3a), its
    files written into ``out`` and recorded in ``files``; returns its Markdown sections."""
    points, notes = group_points(runs)
    blocks = by_kind(points)
    results = check_claims(points)

    def write(name: str, text: str) -> None:
        files[name] = out / name
        files[name].write_text(text)

    claims = claims_markdown(results)
    write("claims.md", "# Paper claims at this scale\n\n" + claims + "".join(f"- {n}\n" for n in notes))
    write("claims.csv", _claims_csv(results))
    probes = seed_table("Seed-aggregated Table 1: probes by (k, w), top-1 (%)", blocks, DATASETS, scale=100.0, digits=2)
    measures = seed_table("Seed-aggregated measures: final loss and held-out figures by (k, w)", blocks,
                          ("final_loss", *HELDOUT_FIGURES))
    write("seeds_table1.csv", probes.csv())
    write("seeds_measures.csv", measures.csv())
    sections = ["## Seed-aggregated results\n\n" + "".join(f"- {n}\n" for n in notes), claims, probes.markdown(),
                measures.markdown()]
    no_window, adjacent = blocks["w=M_n"], blocks["w=k"]
    ks = {p.k for p in adjacent}
    images = []
    for name, series, title in (
        ("seeds_fig1a.png", [("w = M_n", no_window)], "Figure 1a: discrepancy against k (w = M_n)"),
        ("seeds_fig1c.png", [("w = M_n", [p for p in no_window if p.k in ks]), ("w = k", adjacent)],
         "Figure 1c: adjacent snippets (w = k) against no window"),
    ):
        if plot_seed_discrepancy(series, out / name, title) is not None:
            files[name] = out / name
            images.append(f"![{title}]({name})")
    png, curves = plot_seed_losses(no_window, out / "seeds_fig3a.png", "Figure 3a: loss for each k (w = M_n)")
    if png is not None:
        files[png.name] = png
        write("seeds_fig3a.csv", curves.csv())
        images.append(f"![Figure 3a]({png.name})")
    sections.append("\n".join(images) + "\n" if images else "_(no seed-aggregated figures: no measures or losses)_\n")
    return sections
