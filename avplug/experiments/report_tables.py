"""The report's tables: Table 1, Table 2 and the list of all runs, as Markdown and CSV (:class:`Table`).

Table 1 is (k, w) against HMDB51 / ESC50 / UCF101 top-1 (%), rows in the paper's order: the
randomly initialized baseline, w = M_n by k, the windowed runs by (k, w), then w = k; only runs
with sigma = 0 and the unnormalized loss (:func:`is_plain`).  Table 2 is (k, sigma) rows with the
unnormalized loss, then (k, tau) rows with the normalized one, w = M_n throughout.  Missing
numbers show as :data:`MISSING` in Markdown and as "" in CSV (:func:`csv_number`).
"""
from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from avplug.evaluation.discrepancy import MEASURE_KEYS
from avplug.experiments.run_folders import RunInfo
from avplug.experiments.seeds import DATASETS, finite

#: How a missing number shows in Markdown.
MISSING = "-"


@dataclass
class Table:
    """A titled table: ``columns`` and ``rows`` of display strings, plus notes under it.

    ``csv_rows`` hold the machine-readable values (numbers unformatted, "" when missing) under
    ``csv_columns``.
    """

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    csv_columns: list[str] = field(default_factory=list)
    csv_rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        """The table in Markdown: ``|`` inside cells escaped, numeric columns right-aligned."""
        lines = [f"**{self.title}**", ""]
        if not self.rows:
            lines.append("_(no runs)_")
        else:
            def cells(values: Sequence[str]) -> str:
                return "| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |"

            numeric = [all(_is_number(row[i]) for row in self.rows) for i in range(len(self.columns))]
            lines.append(cells(self.columns))
            lines.append("| " + " | ".join("---:" if n else "---" for n in numeric) + " |")
            lines += [cells(row) for row in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.csv_columns)
        writer.writerows(self.csv_rows)
        return buf.getvalue()


def _is_number(cell: str) -> bool:
    """A cell showing a number ("62.92", "89.00 ± 1.41") or a missing one ("-")."""
    if cell == MISSING:
        return True
    try:
        float(cell.split(" ")[0])
    except ValueError:
        return False
    return True


def _w_label(run: RunInfo) -> str:
    if run.k == 1 or run.w is None:
        return MISSING
    return "M_n" if run.w == 0 else str(run.w)


def _k_label(run: RunInfo) -> str:
    if run.k is None:
        return MISSING
    return f"{run.k} (title-uniform)" if run.k == 1 and run.sampler == "HierarchicalSampler" else str(run.k)


def _accuracy(run: RunInfo, dataset: str) -> tuple[str, float | None, float | None]:
    """(display, mean %, std %) of top-1 for ``dataset``."""
    agg = run.downstream.get(dataset)
    if not agg:
        return MISSING, None, None
    mean = finite(agg.get("mean", {}).get("top1"))
    if mean is None:
        return MISSING, None, None
    std = finite(agg.get("std", {}).get("top1")) or 0.0
    splits = agg.get("splits") or []
    text = f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if len(splits) > 1 else "")
    return text, 100 * mean, 100 * std


def is_plain(run: RunInfo) -> bool:
    """Sampling ablation only: no color jitter, unnormalized loss."""
    return not run.baseline and (run.sigma or 0.0) == 0.0 and not run.normalized


def _downstream_notes(runs: Sequence[RunInfo], datasets: Sequence[str]) -> list[str]:
    notes = []
    for dataset in datasets:
        setups = sorted({(a.get("protocol", "?"), tuple(a.get("splits") or ())) for r in runs if (a := r.downstream.get(dataset))})
        if setups:
            notes.append(f"{dataset}: " + "; ".join(f"{p}, split(s) {list(s)}" for p, s in setups) + " (top-1 %, mean over splits)")
        missing = [r.name for r in runs if dataset not in r.downstream]
        if missing:
            notes.append(f"{dataset}: no result for {', '.join(missing)}")
    return notes


def _table(title: str, runs: Sequence[RunInfo], key_columns: Sequence[tuple[str, Any]], blocks: Sequence[str]) -> Table:
    """Rows of ``runs`` with ``key_columns`` ((header, fn(run) -> str)) then the three accuracies."""
    catalogs = sorted({r.catalog for r in runs if r.catalog})
    extra = [("pretraining data", lambda r: os.path.basename(r.catalog.rstrip("/")) or MISSING)] if len(catalogs) > 1 else []
    cols = [("run", lambda r: r.name)] + list(key_columns) + extra
    table = Table(title, [c for c, _ in cols] + list(DATASETS))
    table.csv_columns = ["run", "block"] + [c for c, _ in cols[1:]] + [d for ds in DATASETS for d in (ds, f"{ds}_std")]
    for run, block in zip(runs, blocks):
        shown = [fn(run) for _, fn in cols]
        accs = [_accuracy(run, d) for d in DATASETS]
        table.rows.append(shown + [a[0] for a in accs])
        numbers = [x for a in accs for x in (csv_number(a[1]), csv_number(a[2]))]
        table.csv_rows.append([run.name, block] + shown[1:] + numbers)
    table.notes = _downstream_notes(runs, DATASETS)
    if len(catalogs) > 1:
        table.notes.append("pretraining data differs between rows: " + ", ".join(c or "(unknown)" for c in catalogs))
    return table


def csv_number(value: float | None, digits: int = 4) -> Any:
    return "" if value is None else round(value, digits)


def table1(runs: Sequence[RunInfo]) -> Table:
    """Table 1: the baseline, then w = M_n by k, the windowed runs by (k, w), and w = k by k."""
    plain = [r for r in runs if is_plain(r) and r.k is not None and r.w is not None]
    base = [r for r in runs if r.baseline]
    no_window = sorted((r for r in plain if r.w == 0 or r.k == 1), key=lambda r: (r.k, r.name))
    adjacent = sorted((r for r in plain if r.k != 1 and r.w == r.k), key=lambda r: (r.k, r.name))
    windowed = sorted((r for r in plain if r.k != 1 and r.w not in (0, r.k)), key=lambda r: (r.k, r.w, r.name))
    rows = base + no_window + windowed + adjacent
    blocks = ["baseline"] * len(base) + ["w=M_n"] * len(no_window) + ["window"] * len(windowed) + ["w=k"] * len(adjacent)
    cols = [("k", lambda r: MISSING if r.baseline else _k_label(r)), ("w", lambda r: MISSING if r.baseline else _w_label(r))]
    table = _table("Table 1: sampling policy (k, w) vs downstream top-1 (%)", rows, cols, blocks)
    if base:
        table.notes.insert(0, f"{', '.join(r.name for r in base)}: randomly initialized encoders (no pretraining)")
    if any(r.k == 1 and r.sampler == "IIDSampler" for r in rows):
        table.notes.append("k = 1 is the i.i.d. baseline (IIDSampler)")
    unknown = [r.name for r in runs if not r.baseline and (r.k is None or r.w is None)]
    if unknown:
        table.notes.append(f"left out (no SAMPLER.K / WINDOW known): {', '.join(unknown)}")
    return table


def table2(runs: Sequence[RunInfo]) -> Table | None:
    """Table 2 (None when no run has color jitter or the normalized loss): (k, sigma) rows with the
    unnormalized loss, then (k, tau) rows with the normalized loss; all with w = M_n."""
    candidates = [r for r in runs if not r.baseline and r.k is not None and (r.w == 0 or r.k == 1)]
    varied = [r for r in candidates if (r.sigma or 0.0) > 0 or r.normalized]
    if not varied:
        return None
    ks = {r.k for r in varied}
    sigma_rows = sorted(
        (r for r in candidates if not r.normalized and r.k in ks),
        key=lambda r: ((r.sigma or 0.0) > 0, r.k, r.sigma or 0.0, r.name),
    )
    tau_rows = sorted((r for r in candidates if r.normalized), key=lambda r: (r.k, r.tau or 0.0, r.name))
    cols = [
        ("k", _k_label),
        ("σ", lambda r: MISSING if r.sigma is None else f"{r.sigma:g}"),
        ("τ", lambda r: "unnormalized" if not r.normalized else (MISSING if r.tau is None else f"{r.tau:g}")),
    ]
    blocks = ["sigma"] * len(sigma_rows) + ["tau"] * len(tau_rows)
    table = _table("Table 2: color jitter (σ) and l2-normalized loss with temperature (τ) vs downstream top-1 (%)",
                   sigma_rows + tau_rows, cols, blocks)
    table.notes.append("w = M_n throughout; τ rows use LOSS.NORMALIZE True")
    return table


def runs_table(runs: Sequence[RunInfo]) -> Table:
    """Every run: status, settings, steps, final loss, final discrepancy measures, accuracies."""
    columns = ["run", "status", "k", "w", "sampler", "σ", "τ", "steps", "final loss", *MEASURE_KEYS, *DATASETS]
    table = Table("All runs", columns)
    table.csv_columns = ["run", "status", "baseline", "k", "w", "sampler", "sigma", "tau", "steps", "final_loss", *MEASURE_KEYS, *DATASETS]
    for r in runs:
        d = r.discrepancy or {}
        accs = [_accuracy(r, ds) for ds in DATASETS]
        loss = r.final_loss
        table.rows.append([
            r.name, r.status, MISSING if r.baseline else _k_label(r), MISSING if r.baseline else _w_label(r),
            MISSING if r.baseline else r.sampler or MISSING, MISSING if r.sigma is None or r.baseline else f"{r.sigma:g}",
            MISSING if r.baseline else "unnormalized" if not r.normalized else f"{r.tau:g}" if r.tau is not None else MISSING,
            MISSING if r.steps is None else str(r.steps), MISSING if loss is None else f"{loss:.4f}",
            *[MISSING if d.get(m) is None else f"{d[m]:.4f}" for m in MEASURE_KEYS], *[a[0] for a in accs],
        ])
        table.csv_rows.append([
            r.name, r.status, r.baseline, "" if r.k is None else r.k, "" if r.w is None else r.w, r.sampler,
            "" if r.sigma is None else r.sigma, "" if r.tau is None else r.tau, "" if r.steps is None else r.steps,
            "" if loss is None else loss, *[csv_number(d.get(m)) for m in MEASURE_KEYS], *[csv_number(a[1]) for a in accs],
        ])
    no_measures = [r.name for r in runs if r.discrepancy is None and r.status not in ("invalid", "planned")]
    if no_measures:
        table.notes.append(f"no discrepancy measures (no discrepancy.json nor a record in metrics.jsonl): {', '.join(no_measures)}")
    for r in runs:
        if r.status in ("invalid", "planned", "failed", "running"):
            table.notes.append(f"{r.name}: {r.status}")
    return table
