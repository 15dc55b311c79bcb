"""What a report reads from a run folder: :class:`RunInfo`, from the files a run leaves behind.

:func:`read_run` reads one run folder: ``config.yaml`` (the resolved cfg: k = SAMPLER.K, w =
SAMPLER.WINDOW with 0 meaning M_n, sigma = INPUT.VIDEO.COLOR_JITTER, tau = LOSS.TEMPERATURE when
LOSS.NORMALIZE), ``eval/*/results.json`` (downstream aggregates: mean top-1 over the evaluated
splits; else the ``downstream`` of the run's ``results.json``), ``discrepancy.json`` (the final
model's measures; else the last discrepancy record of ``metrics.jsonl``), the loss records of
``metrics.jsonl``, and ``run.json`` (its status).  :func:`collect_runs` finds the runs of sweep
folders (``sweep.json``), run folders, or folders of run folders.  Unreadable files become notes,
never errors.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from avplug.engine.metrics import read_metrics
from avplug.evaluation.discrepancy import MEASURE_KEYS
from avplug.experiments.run_configs import read_flat_yaml
from avplug.experiments.seeds import finite


def _read_json(path: Path, notes: list[str]) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        notes.append(f"{path}: unreadable ({exc})")
        return None


def read_metrics_tolerant(path: Path, notes: list[str]) -> list[dict[str, Any]]:
    """:func:`avplug.engine.metrics.read_metrics` that skips lines that do not parse (a run being
    written) and says so in ``notes``; a missing file gives no records."""
    if not path.is_file():
        return []
    bad: list[int] = []
    try:
        records = read_metrics(path, skipped=bad)
    except OSError as exc:
        notes.append(f"{path}: unreadable ({exc})")
        return []
    if bad:
        notes.append(f"{path}: {len(bad)} unreadable line(s) skipped")
    return records


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
            info.cfg = read_flat_yaml(config)
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
    if not (isinstance(measured, dict) and all(k in measured for k in MEASURE_KEYS)):
        with_measures = [r for r in records if all(k in r for k in MEASURE_KEYS)]
        measured = with_measures[-1] if with_measures else None
        if measured is None and isinstance(summary, dict) and isinstance(summary.get("discrepancy"), dict):
            measured = summary["discrepancy"]
    if isinstance(measured, dict) and all(k in measured for k in MEASURE_KEYS):
        info.discrepancy = {k: finite(measured[k]) for k in MEASURE_KEYS}
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
