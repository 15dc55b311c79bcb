"""Reports of finished runs in the paper's shapes: Tables 1 and 2, Figure 1 and Figure 3.

:func:`build_report` gathers runs from sweep folders (``sweep.json``, see
:mod:`avplug.evaluation.sweep`) or run folders (a pretraining ``OUTPUT_DIR``) and writes into a
report folder:

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

The report opens with a seed-aggregated part (:func:`seed_sections`): runs that differ only in ``SEED`` are one
point (:mod:`avplug.evaluation.seeds`: mean over seeds, 95% t-interval across seeds, a single
seed's own interval), and the paper's claims get verdicts from those intervals
(:mod:`avplug.evaluation.claims`):

* ``claims.md/.csv`` -- each claim (Figures 1a, 1c, 3a, Table 1) with both points' estimates, the
  difference, the paper's numbers and the verdict: reproduced / opposite / not resolved.
* ``seeds_table1.csv`` -- Table 1 by point: probes' top-1 with intervals and chance, the baseline
  on top; ``seeds_measures.csv`` -- final loss, KL(S- || S!=), gap, v2a R@1 and within-title
  by point (both long: one row per point and figure, with per-seed values and sample sizes).
* ``seeds_fig1a.png``, ``seeds_fig1c.png`` -- Figure 1a (w = M_n against k) and 1c (w = k against
  w = M_n) with error bars; ``seeds_fig3a.png/.csv`` -- Figure 3a: mean loss per k with its band.

Where the numbers come from, per run folder: ``config.yaml`` (the resolved cfg: k = SAMPLER.K,
w = SAMPLER.WINDOW with 0 meaning M_n, sigma = INPUT.VIDEO.COLOR_JITTER, tau = LOSS.TEMPERATURE
when LOSS.NORMALIZE), ``eval/*/results.json`` (downstream aggregates: mean top-1 over the
evaluated splits; else the ``downstream`` of the run's ``results.json``), ``discrepancy.json``
(the final model's measures; else the last discrepancy record of ``metrics.jsonl``) and the loss
records of ``metrics.jsonl``.  Anything missing shows as ``-`` with a note naming the run and the
file; unreadable files are notes too, never errors.  Plots use matplotlib's Agg backend.
"""
from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avplug.evaluation.claims import ClaimResult, check_claims, claims_markdown
from avplug.evaluation.intervals import format_estimate
from avplug.evaluation.seeds import (
    DATASETS,
    HELDOUT_FIGURES,
    Estimate,
    Point,
    by_kind,
    finite,
    group_points,
    loss_band,
    t_quantile,
)

#: The discrepancy measures, in reporting order (as in avplug.evaluation.discrepancy).
MEASURES = ("KL(S-||S+)", "KL(S!=||S+)", "KL(S-||S!=)", "gap")
MISSING = "-"


# ---------------------------------------------------------------------------------------------
# Reading runs
# ---------------------------------------------------------------------------------------------
def _read_json(path: Path, notes: list[str]) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        notes.append(f"{path}: unreadable ({exc})")
        return None


def read_metrics_tolerant(path: Path, notes: list[str]) -> list[dict[str, Any]]:
    """Records of ``metrics.jsonl`` in step order, the last of each (step, keys) kept (as
    ``avplug.engine.metrics.read_metrics``), skipping lines that do not parse (a run being written)."""
    if not path.is_file():
        return []
    records: dict[tuple[int, tuple[str, ...]], dict[str, Any]] = {}
    bad = 0
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        notes.append(f"{path}: unreadable ({exc})")
        return []
    for line in lines:
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            records[(int(rec["step"]), tuple(sorted(rec)))] = rec
        except (ValueError, KeyError, TypeError):
            bad += 1
    if bad:
        notes.append(f"{path}: {bad} unreadable line(s) skipped")
    return [records[k] for k in sorted(records, key=lambda k: k[0])]


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}


@dataclass
class RunInfo:
    """What a report knows about one run (``None`` / empty where a file was missing).

    ``heldout`` holds every key of the final held-out measures (values, intervals, chance levels,
    sample sizes), ``discrepancy`` their four measures alone.
    """

    name: str
    path: Path
    status: str = "unknown"
    baseline: bool = False
    cfg: dict[str, Any] = field(default_factory=dict)
    discrepancy: dict[str, float] | None = None
    downstream: dict[str, dict[str, Any]] = field(default_factory=dict)
    losses: list[tuple[int, float]] = field(default_factory=list)
    steps: int | None = None
    heldout: dict[str, Any] = field(default_factory=dict)
    steps_per_epoch: float | None = None

    @property
    def k(self) -> int | None:
        value = self.cfg.get("SAMPLER.K")
        return int(value) if isinstance(value, (int, float)) else None

    @property
    def w(self) -> int | None:
        value = self.cfg.get("SAMPLER.WINDOW")
        return int(value) if isinstance(value, (int, float)) else None

    @property
    def sampler(self) -> str:
        return str(self.cfg.get("SAMPLER.NAME", ""))

    @property
    def sigma(self) -> float | None:
        return finite(self.cfg.get("INPUT.VIDEO.COLOR_JITTER"))

    @property
    def normalized(self) -> bool:
        return bool(self.cfg.get("LOSS.NORMALIZE", False))

    @property
    def tau(self) -> float | None:
        return finite(self.cfg.get("LOSS.TEMPERATURE")) if self.normalized else None

    @property
    def catalog(self) -> str:
        return str(self.cfg.get("DATA.CATALOG_DIR", ""))

    @property
    def final_loss(self) -> float | None:
        return self.losses[-1][1] if self.losses else None


def read_run(path: Path, name: str | None = None, *, status: str | None = None, baseline: bool | None = None,
             overrides: dict[str, Any] | None = None, notes: list[str]) -> RunInfo:
    """A :class:`RunInfo` from run folder ``path`` (see the module docstring for the files read)."""
    import yaml

    info = RunInfo(name=name or path.name, path=path)
    state = _read_json(path / "run.json", notes)
    summary = _read_json(path / "results.json", notes)
    info.status = status or (state.get("status") if isinstance(state, dict) else None) or (
        "finished" if isinstance(summary, dict) else "unknown"
    )
    if baseline is None:
        baseline = bool(summary.get("baseline")) if isinstance(summary, dict) else False
    info.baseline = baseline
    config = path / "config.yaml"
    if config.is_file():
        try:
            info.cfg = _flatten(yaml.safe_load(config.read_text()) or {})
        except (OSError, yaml.YAMLError) as exc:
            notes.append(f"{config}: unreadable ({exc})")
    if not info.cfg and overrides:
        info.cfg = dict(overrides)
        notes.append(f"{info.name}: no config.yaml; settings taken from the sweep record's overrides only")

    records = read_metrics_tolerant(path / "metrics.jsonl", notes)
    info.losses = [(int(r["step"]), float(r["loss"])) for r in records if finite(r.get("loss")) is not None]
    epochs = [(int(r["step"]), e) for r in records if "loss" in r and (e := finite(r.get("epoch"))) and e > 0]
    info.steps_per_epoch = epochs[-1][0] / epochs[-1][1] if epochs else None
    info.steps = info.losses[-1][0] if info.losses else (summary.get("steps") if isinstance(summary, dict) else None)
    measured = _read_json(path / "discrepancy.json", notes)
    if isinstance(measured, dict) and measured.get("error"):
        notes.append(f"{info.name}: the final model has no discrepancy measures ({measured['error']}); "
                     "an earlier record of metrics.jsonl is used if there is one")
    if not (isinstance(measured, dict) and all(k in measured for k in MEASURES)):
        with_measures = [r for r in records if all(k in r for k in MEASURES)]
        measured = with_measures[-1] if with_measures else None
        if measured is None and isinstance(summary, dict) and isinstance(summary.get("discrepancy"), dict):
            measured = summary["discrepancy"]
    if isinstance(measured, dict) and all(k in measured for k in MEASURES):
        info.discrepancy = {k: finite(measured[k]) for k in MEASURES}
        info.heldout = dict(measured)

    for results in sorted((path / "eval").glob("*/results.json")) if (path / "eval").is_dir() else []:
        agg = _read_json(results, notes)
        if isinstance(agg, dict) and "dataset" in agg and isinstance(agg.get("mean"), dict):
            info.downstream.setdefault(str(agg["dataset"]), agg)
    if not info.downstream and isinstance(summary, dict) and isinstance(summary.get("downstream"), dict):
        for dataset, agg in summary["downstream"].items():
            if isinstance(agg, dict) and isinstance(agg.get("mean"), dict):
                info.downstream[str(agg.get("dataset", dataset))] = agg
    return info


def collect_runs(paths: Iterable[str | os.PathLike]) -> tuple[list[RunInfo], list[str]]:
    """Runs of sweep folders (``sweep.json``), run folders, or folders of run folders; plus notes.

    A run listed in a sweep record without a folder yet (planned, invalid) is included with its
    recorded status so that the tables show it as missing.
    """
    runs: list[RunInfo] = []
    notes: list[str] = []
    seen: set[Path] = set()

    def add(info: RunInfo) -> None:
        key = info.path.resolve()
        if key not in seen:
            seen.add(key)
            runs.append(info)

    for raw in paths:
        path = Path(raw)
        record = _read_json(path / "sweep.json", notes)
        if isinstance(record, dict) and isinstance(record.get("runs"), list):
            for entry in record["runs"]:
                if not isinstance(entry, dict) or "name" not in entry:
                    continue
                folder = path / entry["name"]
                status = "invalid" if entry.get("status") == "invalid" else None
                if status == "invalid":
                    notes.append(f"{entry['name']}: invalid grid point, not run: {entry.get('error', '')}")
                info = read_run(folder, entry["name"], status=status if status or folder.is_dir() else "planned",
                                baseline=bool(entry.get("baseline")), overrides=entry.get("overrides") or {}, notes=notes)
                add(info)
        elif any((path / f).exists() for f in ("config.yaml", "metrics.jsonl", "run.json", "results.json")):
            add(read_run(path, notes=notes))
        elif path.is_dir():
            children = [c for c in sorted(path.iterdir()) if c.is_dir() and (c / "config.yaml").is_file()]
            if not children:
                notes.append(f"{path}: neither a sweep folder, a run folder, nor a folder of runs")
            for child in children:
                add(read_run(child, notes=notes))
        else:
            notes.append(f"{path}: not found")
    return runs, notes


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------
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


def _is_plain(run: RunInfo) -> bool:
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
        numbers = [x for a in accs for x in (_num(a[1]), _num(a[2]))]
        table.csv_rows.append([run.name, block] + shown[1:] + numbers)
    table.notes = _downstream_notes(runs, DATASETS)
    if len(catalogs) > 1:
        table.notes.append("pretraining data differs between rows: " + ", ".join(c or "(unknown)" for c in catalogs))
    return table


def _num(value: float | None, digits: int = 4) -> Any:
    return "" if value is None else round(value, digits)


def table1(runs: Sequence[RunInfo]) -> Table:
    """Table 1: the baseline, then w = M_n by k, the windowed runs by (k, w), and w = k by k."""
    plain = [r for r in runs if _is_plain(r) and r.k is not None and r.w is not None]
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
    columns = ["run", "status", "k", "w", "sampler", "σ", "τ", "steps", "final loss", *MEASURES, *DATASETS]
    table = Table("All runs", columns)
    table.csv_columns = ["run", "status", "baseline", "k", "w", "sampler", "sigma", "tau", "steps", "final_loss", *MEASURES, *DATASETS]
    for r in runs:
        d = r.discrepancy or {}
        accs = [_accuracy(r, ds) for ds in DATASETS]
        loss = r.final_loss
        table.rows.append([
            r.name, r.status, MISSING if r.baseline else _k_label(r), MISSING if r.baseline else _w_label(r),
            MISSING if r.baseline else r.sampler or MISSING, MISSING if r.sigma is None or r.baseline else f"{r.sigma:g}",
            MISSING if r.baseline else "unnormalized" if not r.normalized else f"{r.tau:g}" if r.tau is not None else MISSING,
            MISSING if r.steps is None else str(r.steps), MISSING if loss is None else f"{loss:.4f}",
            *[MISSING if d.get(m) is None else f"{d[m]:.4f}" for m in MEASURES], *[a[0] for a in accs],
        ])
        table.csv_rows.append([
            r.name, r.status, r.baseline, "" if r.k is None else r.k, "" if r.w is None else r.w, r.sampler,
            "" if r.sigma is None else r.sigma, "" if r.tau is None else r.tau, "" if r.steps is None else r.steps,
            "" if loss is None else loss, *[_num(d.get(m)) for m in MEASURES], *[_num(a[1]) for a in accs],
        ])
    no_measures = [r.name for r in runs if r.discrepancy is None and r.status not in ("invalid", "planned")]
    if no_measures:
        table.notes.append(f"no discrepancy measures (no discrepancy.json nor a record in metrics.jsonl): {', '.join(no_measures)}")
    for r in runs:
        if r.status in ("invalid", "planned", "failed", "running"):
            table.notes.append(f"{r.name}: {r.status}")
    return table


# ---------------------------------------------------------------------------------------------
# Figure series
# ---------------------------------------------------------------------------------------------
@dataclass
class Series:
    """One curve: a label and its points ``(x, x label, run)``."""

    label: str
    points: list[tuple[float, str, RunInfo]]


def k_series(runs: Sequence[RunInfo]) -> list[Series]:
    """Figure 1a / 3a: w = M_n against k (k = 1 included); Figure 1c: w = k against k."""
    plain = [r for r in runs if _is_plain(r) and r.k is not None and r.w is not None]
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
    plain = [r for r in runs if _is_plain(r) and r.k is not None and r.w is not None and r.k != 1]
    out = []
    for k in sorted({r.k for r in plain if r.w not in (0, r.k)}):
        windowed = sorted((r for r in plain if r.k == k and r.w not in (0, k)), key=lambda r: (r.w, r.name))
        top = max(r.w for r in windowed)
        points = [(float(r.w), str(r.w), r) for r in windowed]
        points += [(float(2 * top), "M_n", r) for r in plain if r.k == k and r.w == 0]
        out.append(Series(f"k = {k}", points))
    return out


def _measure_table(title: str, series: Sequence[Series], axis: str) -> Table:
    table = Table(title, ["series", axis, "run", *MEASURES])
    table.csv_columns = ["series", axis, "run", *MEASURES]
    missing = []
    for s in series:
        for _, label, run in s.points:
            d = run.discrepancy or {}
            if run.discrepancy is None:
                missing.append(run.name)
            table.rows.append([s.label, label, run.name, *[MISSING if d.get(m) is None else f"{d[m]:.4f}" for m in MEASURES]])
            table.csv_rows.append([s.label, label, run.name, *[_num(d.get(m)) for m in MEASURES]])
    if missing:
        table.notes.append(f"no discrepancy measures for {', '.join(missing)}")
    table.notes.append("final values of each run (its discrepancy.json, else the last discrepancy record of metrics.jsonl); "
                       "gap = KL(S!=||S+) - KL(S-||S+)")
    return table


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_discrepancy(series: Sequence[Series], axis: str, path: Path, title: str) -> Path | None:
    """Two panels, KL(S-||S!=) and the gap, against ``axis`` (log2 scale); None if no point has measures."""
    drawable = [s for s in series if any(run.discrepancy for _, _, run in s.points)]
    if not drawable:
        return None
    plt = _plt()
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


def _loss_groups(runs: Sequence[RunInfo]) -> dict[str, list[tuple[str, RunInfo]]]:
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
    plt = _plt()
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


def _loss_table(groups: dict[str, list[tuple[str, RunInfo]]]) -> Table:
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


# ---------------------------------------------------------------------------------------------
# Seed-aggregated results (points of avplug.evaluation.seeds, verdicts of avplug.evaluation.claims)
# ---------------------------------------------------------------------------------------------
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
                table.csv_rows.append([p.name, block, _point_k(p), _point_w(p), f, e.seeds, _num(e.value, 8),
                                       _num(e.low, 8), _num(e.high, 8), e.interval, _num(e.chance, 8), e.sample,
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
    plt = _plt()
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
        table.csv_rows += [[p.name, s, _num(m, 8), _num(lo, 8), _num(hi, 8), seeds]
                           for s, m, lo, hi in zip(steps, mean, low or [None] * len(steps), high or [None] * len(steps))]
    if not curves:
        return None, table
    plt = _plt()
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
            name, *([_num(e.value, 8), _num(e.low, 8), _num(e.high, 8), e.seeds] if e else ["", "", "", 0]))]
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


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------
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
        table = _measure_table(title, series, axis)
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

    groups = _loss_groups(runs)
    loss_table = _loss_table(groups)
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
