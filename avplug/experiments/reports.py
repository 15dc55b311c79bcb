"""Reports of finished runs in the paper's shapes: Tables 1 and 2, Figure 1 and Figure 3.

:func:`build_report` gathers runs from sweep folders (``sweep.json``, see
:mod:`avplug.experiments.sweep_record`) or run folders (a pretraining ``OUTPUT_DIR``) and writes
into a report folder (tables: :mod:`~avplug.experiments.report_tables`; figures:
:mod:`~avplug.experiments.report_figures`):

* ``table1.md/.csv`` -- Table 1: (k, w) against HMDB51 / ESC50 / UCF101 top-1 (%), rows in the
  paper's order: w = M_n by k, then the windowed runs by (k, w), then w = k; the randomly
  initialized baseline on top.  Only runs with sigma = 0 and the unnormalized loss.
* ``table2.csv`` -- Table 2 (when some run has color jitter or the l2-normalized loss): (k, sigma)
  rows with the unnormalized loss, then (k, tau) rows with the normalized one, w = M_n throughout.
* ``fig1_k.png/.csv`` -- Figure 1a (and 1c): KL(S- || S!=) and the gap KL(S!= || S+) -
  KL(S- || S+) against k, for w = M_n and for w = k.
* ``fig1_w.png/.csv`` -- Figure 1b: the same against w for each k with windowed runs, ending at
  w = M_n.
* ``fig3_k.png``, ``fig3_w.png`` (and ``fig3_adjacent.png``), ``fig3_loss.csv`` -- Figure 3:
  pretraining loss against step for each k (w = M_n), for each w at fixed k (and w = k).
* ``runs.csv`` -- every run with its settings, steps, final loss, measures and accuracies.
* ``report.md`` -- all of the above in Markdown (the seed-aggregated part first), with the notes.

The report opens with a seed-aggregated part (:func:`avplug.experiments.seed_report.seed_sections`):
runs that differ only in ``SEED`` are one point (:mod:`avplug.experiments.seeds`: mean over seeds,
95% t-interval across seeds, a single seed's own interval), and the paper's claims get verdicts
from those intervals (:mod:`avplug.experiments.claims`):

* ``claims.md/.csv`` -- each claim (Figures 1a, 1c, 3a, Table 1) with both points' estimates, the
  difference, the paper's numbers and the verdict: reproduced / opposite / not resolved.
* ``seeds_table1.csv`` -- Table 1 by point: probes' top-1 with intervals and chance, the baseline
  on top; ``seeds_measures.csv`` -- final loss, KL(S- || S!=), gap, v2a R@1 and within-title
  by point (both long: one row per point and figure, with per-seed values and sample sizes).
* ``seeds_fig1a.png``, ``seeds_fig1c.png`` -- Figure 1a (w = M_n against k) and 1c (w = k against
  w = M_n) with error bars; ``seeds_fig3a.png/.csv`` -- Figure 3a: mean loss per k with its band.

Where the numbers come from, per run folder: :mod:`avplug.experiments.run_folders`.  Anything
missing shows as ``-`` with a note naming the run and the file; unreadable files are notes too,
never errors.  Plots use matplotlib's Agg backend.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from avplug.experiments.report_figures import (
    k_series,
    loss_curves_table,
    loss_groups,
    measure_table,
    plot_discrepancy,
    plot_losses,
    w_series,
)
from avplug.experiments.report_tables import runs_table, table1, table2
from avplug.experiments.run_folders import collect_runs
from avplug.experiments.seed_report import seed_sections


def build_report(paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike) -> dict[str, Any]:
    """Write the report of the runs under ``paths`` into ``out_dir``; returns ``{"markdown", "files", "notes", "runs"}``.

    ``files`` maps each written file's role (``table1.csv``, ``fig1_k.png``, ...) to its path.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs, notes = collect_runs(paths)
    files: dict[str, Path] = {}

    def write(name: str, text: str) -> None:
        files[name] = out / name
        files[name].write_text(text)

    sections = [f"# Sweep report\n\nSources: {', '.join(str(p) for p in paths)}; {len(runs)} run(s).\n"]
    sections += seed_sections(runs, out, files)
    sections.append("## Runs\n")
    all_runs = runs
    runs = [r for r in runs if r.status != "invalid"]  # invalid grid points appear in the runs table only
    t1 = table1(runs)
    write("table1.csv", t1.csv())
    sections.append(t1.markdown())
    t2 = table2(runs)
    if t2 is not None:
        write("table2.csv", t2.csv())
        sections.append(t2.markdown())
    else:
        sections.append("**Table 2**: no run with color jitter or the l2-normalized loss.\n")

    for axis, series, title in (("k", k_series(runs), "Figure 1: discrepancy against k"),
                                ("w", w_series(runs), "Figure 1: discrepancy against w")):
        table = measure_table(title, series, axis)
        if not series:
            sections.append(f"**{title}**: no runs for this curve.\n")
            continue
        write(f"fig1_{axis}.csv", table.csv())
        png = plot_discrepancy(series, axis, out / f"fig1_{axis}.png", title)
        if png is not None:
            files[png.name] = png
            sections.append(table.markdown() + f"\n![{title}]({png.name})\n")
        else:
            table.notes.append("no plot: no run of this curve has discrepancy measures")
            sections.append(table.markdown())

    groups = loss_groups(runs)
    loss_table = loss_curves_table(groups)
    titles = {"k": "Figure 3a: loss for each k (w = M_n)", "w": "Figure 3b: loss for each w", "adjacent": "Figure 3c: loss with w = k"}
    images = []
    for group, curves in groups.items():
        if curves:
            png = plot_losses(curves, out / f"fig3_{group}.png", titles[group])
            if png is not None:
                files[png.name] = png
                images.append(f"![{titles[group]}]({png.name})")
    if loss_table.rows:
        write("fig3_loss.csv", loss_table.csv())
        sections.append(loss_table.markdown() + ("\n" + "\n".join(images) + "\n" if images else ""))
    else:
        sections.append("**Figure 3**: no runs for the loss curves.\n")

    listing = runs_table(all_runs)
    write("runs.csv", listing.csv())
    sections.append(listing.markdown())
    if notes:
        sections.append("**Notes**\n\n" + "\n".join(f"- {n}" for n in notes) + "\n")
    markdown = "\n".join(sections)
    write("report.md", markdown)
    write("table1.md", t1.markdown())
    return {"markdown": markdown, "files": {k: str(v) for k, v in files.items()}, "notes": notes, "runs": len(all_runs)}
