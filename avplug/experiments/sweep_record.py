"""The sweep record: ``SWEEP_DIR/sweep.json`` lists every run, each run's folder holds its ``run.json``.

``sweep.json`` holds, per run, its name, overrides, base recipe, the overrides common to all runs,
plugins, evaluation recipes, and ``status``/``error`` for invalid points
(:func:`avplug.experiments.planning.make_run`).  Each run's folder ``SWEEP_DIR/<name>`` holds its
own ``run.json`` with its status (``running``, ``finished``, ``failed``), so concurrent Slurm tasks
never write the same file.  :func:`sweep_status` merges both.  Rerunning a sweep into the same
folder adds new runs to the record (:func:`update_sweep_record`); a name that would change its
overrides is an error.  Every JSON file is written atomically (:func:`write_json`).
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from avplug.experiments import SweepError

#: Version of the ``sweep.json`` / ``run.json`` layout.
RECORD_VERSION = 1
#: Statuses a run can have.
STATUSES = ("planned", "invalid", "running", "failed", "finished")


def utc_now() -> str:
    """The current UTC time as the record writes it (ISO 8601, seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def read_json(path: str | os.PathLike) -> Any:
    """The JSON in ``path``, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _same_request(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    keys = ("overrides", "baseline", "cfg", "opts", "plugins")
    return all(json.dumps(a.get(k), sort_keys=True, default=str) == json.dumps(b.get(k), sort_keys=True, default=str) for k in keys)


def update_sweep_record(sweep_dir: str | os.PathLike, runs: Sequence[Mapping[str, Any]], notes: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Merge ``runs`` into ``SWEEP_DIR/sweep.json`` and return the runs of this request, as recorded.

    Runs already recorded under the same name must describe the same run (recipe, overrides,
    common overrides, plugins), else :class:`SweepError`; their evaluation recipes are replaced by
    the new request's.  Runs of earlier requests that this one does not name stay in the record.
    """
    sweep_dir = Path(sweep_dir)
    path = sweep_dir / "sweep.json"
    record = read_json(path) if path.exists() else None
    if path.exists() and not isinstance(record, dict):
        raise SweepError(f"{path} is not a sweep record (unreadable JSON): remove it or use another --out")
    record = record or {"version": RECORD_VERSION, "created": utc_now(), "runs": [], "notes": []}
    by_name = {r["name"]: r for r in record["runs"]}
    for run in runs:
        old = by_name.get(run["name"])
        if old is not None and not _same_request(old, run):
            raise SweepError(
                f"{path}: run {run['name']!r} is recorded with other settings "
                f"(overrides {old.get('overrides')}, cfg {old.get('cfg')}, opts {old.get('opts')}); "
                f"this request has overrides {run['overrides']}, cfg {run['cfg']}, opts {run['opts']}. "
                "Use another --out for a different base config"
            )
        if old is None:
            record["runs"].append(dict(run))
        else:  # same run: the new entry (evaluation recipes, validity) replaces the old in place
            old.clear()
            old.update(run)
    record["notes"] = list(dict.fromkeys(list(record.get("notes", [])) + list(notes)))
    record["updated"] = utc_now()
    write_json(path, record)
    names = {r["name"] for r in runs}
    return [dict(r) for r in record["runs"] if r["name"] in names]


def read_sweep_record(sweep_dir: str | os.PathLike) -> dict[str, Any]:
    """``SWEEP_DIR/sweep.json``; :class:`SweepError` when it is missing or unreadable."""
    path = Path(sweep_dir) / "sweep.json"
    record = read_json(path)
    if not isinstance(record, dict) or not isinstance(record.get("runs"), list):
        raise SweepError(f"{path}: no sweep record there (missing or unreadable)")
    return record


def run_dir(sweep_dir: str | os.PathLike, run: Mapping[str, Any]) -> Path:
    """``SWEEP_DIR/<run name>`` (absolute)."""
    return Path(sweep_dir).resolve() / run["name"]


def run_status(sweep_dir: str | os.PathLike, run: Mapping[str, Any]) -> dict[str, Any]:
    """The run's status: ``invalid`` from the record, else its ``run.json`` (``planned`` if none)."""
    if run.get("status") == "invalid":
        return {"status": "invalid", "error": run.get("error", "")}
    state = read_json(run_dir(sweep_dir, run) / "run.json")
    return state if isinstance(state, dict) and state.get("status") in STATUSES else {"status": "planned"}


def sweep_status(sweep_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Every recorded run with its current ``status`` (and ``error``, ``seconds`` where known)."""
    out = []
    for run in read_sweep_record(sweep_dir)["runs"]:
        state = run_status(sweep_dir, run)
        out.append({**run, **{k: state[k] for k in ("status", "error", "seconds", "started", "ended") if k in state}})
    return out


def refresh_sweep_record(sweep_dir: str | os.PathLike) -> dict[str, Any]:
    """Copy every run's current status into ``sweep.json`` (for reading the record alone); returns counts."""
    sweep_dir = Path(sweep_dir)
    record = read_sweep_record(sweep_dir)
    statuses = {r["name"]: r for r in sweep_status(sweep_dir)}
    for run in record["runs"]:
        current = statuses[run["name"]]
        for key in ("status", "error", "seconds", "started", "ended"):
            if key in current:
                run[key] = current[key]
            else:
                run.pop(key, None)
    record["updated"] = utc_now()
    write_json(sweep_dir / "sweep.json", record)
    counts: dict[str, int] = {}
    for run in record["runs"]:
        counts[run["status"]] = counts.get(run["status"], 0) + 1
    return counts
