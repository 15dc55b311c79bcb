"""Ablation sweeps: grids of config overrides, each run pretrained, measured and evaluated.

A sweep is a list of *runs*; a run is a dict of config overrides (``{"SAMPLER.K": 4}``) applied to
one base recipe.  Its pieces, from pure to effectful:

* **Grids** (:func:`parse_grid`, :func:`expand_grid`): ``"SAMPLER.K=1,4,8"`` is one axis; several
  axes give their cartesian product (the first axis varies slowest).
* **Presets** (:data:`PRESETS`, :func:`preset_points`): the paper's grids.  ``table1`` is Table 1's
  three blocks (k in {1, 4, 8, 16, 32, 64} with w = M_n; k = 16 with w in {64, ..., 2048}; w = k
  for k in {4, 16, 64}); ``table2`` is Table 2 (color jitter sigma, and the l2-normalized loss
  with temperature tau); ``fig1-k`` and ``fig1-w`` are the curves of Figure 1a and 1b (1b ends
  at w = M_n); ``repro-cpu`` is the demo-scale reproduction of Figures 1a, 1c, 3a and Table 1
  (k in {1, 4, 16} with w = M_n, and w = k for k in {4, 16}), meant to be combined with
  ``--grid SEED=0,1,2``: every point then has 3 seeds, which the seed-aggregated report
  (:mod:`avplug.evaluation.seeds`) needs for an interval across seeds.  The k = 1 baseline is
  ``SAMPLER.NAME IIDSampler`` (i.i.d. snippets), as the paper's; larger k uses
  ``HierarchicalSampler``.  A preset may be combined with grid axes (their product, e.g. several
  seeds) and restricted with :func:`filter_points`.
* **Fitting to the catalog** (:func:`fit_to_catalog`): the paper's grid assumes titles of about
  two thousand snippets.  On a smaller catalog (the demo) a point is dropped, with a note, when
  its k exceeds the median title length M_n of the training titles (most titles could not give k
  distinct snippets), or when its window w is at least the longest title (then w = M_n for every
  title, the same run as the no-window point).  Nothing else is adjusted: a point that the cfg's
  validation rejects (e.g. ``SOLVER.BATCH_SIZE`` not a multiple of k) is kept in the sweep record
  with status ``invalid`` and its error, and the sweep goes on.
* **Run names** (:func:`run_name`): readable folder names such as ``k4_w0``, ``k1_iid_w0``,
  ``k16_w0_l2on_tau0.07``; :func:`unique_names` suffixes repeats.
* **The sweep record** (:func:`update_sweep_record`): ``SWEEP_DIR/sweep.json`` lists every run
  (name, overrides, base recipe, overrides common to all runs, plugins, evaluation recipes, and
  ``status``/``error`` for invalid points); each run's folder ``SWEEP_DIR/<name>`` holds its own
  ``run.json`` with its status (``running``, ``finished``, ``failed``), so concurrent Slurm tasks
  never write the same file.  :func:`sweep_status` merges both.  Rerunning a sweep into the same
  folder adds new runs to the record; a name that would change its overrides is an error.
* **One run** (:func:`execute_run`): pretraining (skipped when ``pretrain.json`` says it finished;
  otherwise the engine resumes from the run's last checkpoint), the discrepancy measures of the
  final model on the held-out titles (``discrepancy.json``; reused from the engine's record when it
  measured the final step), downstream evaluation with each recipe (``eval/<recipe>/results.json``,
  skipped when present for the same weights), then ``results.json`` (the run's summary) and
  status ``finished``.  The baseline run (``random_init``) skips pretraining and evaluates randomly
  initialized encoders; when the points set ``SEED``, there is one baseline per seed
  (``random_init_seed0``, ...: the seed draws the random weights), else one.  The summaries of
  ``results.json`` leave out the per-clip predictions (``test_clips``), which stay in
  ``eval/<recipe>/results.json``.  A stage can be injected (tests; the Slurm job's distributed
  pretraining).
* **A local sweep** (:func:`run_sweep`): runs one after another, skipping finished ones
  (:func:`is_finished`); a failed run is recorded and the sweep goes on.

Files of a run ``SWEEP_DIR/<name>/``: the engine's (``config.yaml``, ``metrics.jsonl``,
``checkpoints/``, ``loss_curve.png``, ``log.txt``) plus ``run.json``, ``pretrain.json``,
``discrepancy.json`` (+ ``score_histograms.png``), ``eval/<recipe>/`` and ``results.json``.
:mod:`avplug.evaluation.reports` turns finished runs into the paper's tables and figures.
"""
from __future__ import annotations

import ast
import itertools
import json
import logging
import math
import os
import re
import statistics
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger("avplug.sweep")

#: Version of the ``sweep.json`` / ``run.json`` layout.
RECORD_VERSION = 1
#: Name of the randomly initialized baseline run.
BASELINE_NAME = "random_init"
#: Keys of a downstream summary left out of a run's ``results.json`` (per-clip tables: large).
PER_CLIP_KEYS = ("test_clips",)
#: Statuses a run can have.
STATUSES = ("planned", "invalid", "running", "failed", "finished")


class SweepError(ValueError):
    """A malformed grid, an unknown preset, or a sweep folder that contradicts the request."""


# ---------------------------------------------------------------------------------------------
# Grids
# ---------------------------------------------------------------------------------------------
def _split_top_level(text: str) -> list[str]:
    """Split ``text`` at commas outside brackets and quotes: ``"1,(2,3)"`` -> ``["1", "(2,3)"]``."""
    parts, depth, quote, current = [], 0, "", []
    for ch in text:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = ""
            continue
        if ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    parts.append("".join(current).strip())
    return parts


def parse_value(text: str) -> Any:
    """A Python literal (``4``, ``0.5``, ``True``, ``(64, 80)``) or, failing that, the string itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_grid(text: str) -> tuple[str, list[Any]]:
    """``"KEY=v1,v2,..."`` -> ``(KEY, [v1, v2, ...])`` with literal values (see :func:`parse_value`)."""
    key, sep, values = text.partition("=")
    key = key.strip()
    if not sep or not re.fullmatch(r"[A-Z][A-Z0-9_]*(\.[A-Z][A-Z0-9_]*)*", key):
        raise SweepError(f"grid {text!r}: expected KEY=v1,v2,... with an upper-case cfg key, e.g. SAMPLER.K=1,4,8")
    items = _split_top_level(values)
    if not values.strip() or any(not item for item in items):
        raise SweepError(f"grid {text!r}: empty value in the list")
    parsed = [parse_value(item) for item in items]
    if len({repr(v) for v in parsed}) != len(parsed):
        raise SweepError(f"grid {text!r}: a value is listed twice")
    return key, parsed


def expand_grid(axes: Sequence[tuple[str, Sequence[Any]]]) -> list[dict[str, Any]]:
    """The cartesian product of ``axes`` (``(KEY, values)`` pairs) as override dicts, first axis slowest.

    No axis gives ``[{}]`` (one run of the base cfg).
    """
    keys = [key for key, _ in axes]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise SweepError(f"grid key(s) {repeated} given more than once: list all values in one --grid")
    return [dict(zip(keys, combo)) for combo in itertools.product(*[list(values) for _, values in axes])]


def combine_points(first: Sequence[Mapping[str, Any]], second: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every point of ``first`` merged with every point of ``second`` (e.g. a preset x seeds).

    A key set by both is an error (the grid would silently override the preset).
    """
    out = []
    for a in first:
        for b in second:
            clash = sorted(set(a) & set(b))
            if clash:
                raise SweepError(f"key(s) {clash} set both by the preset and by a --grid: drop one")
            out.append({**a, **b})
    return out


def filter_points(points: Sequence[Mapping[str, Any]], only: Mapping[str, Sequence[Any]], base: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The points whose value of every key in ``only`` is among the listed values.

    A point that does not set a key is compared by the base cfg's value (``base``, a flat
    ``{KEY: value}``; a key missing there too never matches).  Numbers compare by value (4 == 4.0).
    """
    base = base or {}
    kept = []
    for point in points:
        ok = True
        for key, allowed in only.items():
            value = point[key] if key in point else base.get(key, _MISSING)
            if not any(_same(value, a) for a in allowed):
                ok = False
                break
        if ok:
            kept.append(dict(point))
    return kept


_MISSING = object()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (isinstance(a, bool) and isinstance(b, bool) and a == b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


# ---------------------------------------------------------------------------------------------
# Presets: the paper's grids
# ---------------------------------------------------------------------------------------------
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


@dataclass(frozen=True)
class CatalogStats:
    """Lengths M_n (snippets) of the training titles of a catalog."""

    num_titles: int
    min_snippets: int
    median_snippets: float
    max_snippets: int

    @classmethod
    def from_lengths(cls, lengths: Iterable[int]) -> CatalogStats:
        lengths = [int(n) for n in lengths]
        if not lengths:
            raise SweepError("the catalog has no training titles")
        return cls(len(lengths), min(lengths), float(statistics.median(lengths)), max(lengths))


def catalog_stats(cfg) -> CatalogStats | None:
    """:class:`CatalogStats` of ``cfg``'s training titles (store + catalog), None if they cannot be read."""
    from avplug.data.splits import load_titles

    try:
        return CatalogStats.from_lengths(t.num_snippets for t in load_titles(cfg, "train"))
    except (OSError, ValueError, LookupError) as exc:  # a missing or foreign store/catalog (StoreError is a LookupError)
        logger.info("cannot read the training titles of %s / %s: %s", cfg.DATA.CATALOG_DIR, cfg.DATA.STORE_DIR, exc)
        return None


def fit_to_catalog(points: Sequence[Mapping[str, Any]], stats: CatalogStats | None) -> tuple[list[dict[str, Any]], list[str]]:
    """Drop the points a catalog cannot support; returns ``(kept, notes)`` (see the module docstring).

    Only ``SAMPLER.K`` and ``SAMPLER.WINDOW`` are looked at; without ``stats`` every point is kept.
    """
    if stats is None:
        return [dict(p) for p in points], ["catalog not readable: the grid is used as given, unfitted"]
    kept, notes = [], []
    for point in points:
        k, w = point.get("SAMPLER.K"), point.get("SAMPLER.WINDOW")
        label = run_name(point)
        if isinstance(k, int) and k > stats.median_snippets:
            notes.append(
                f"skipped {label}: k = {k} exceeds the median title length M_n = {stats.median_snippets:g} snippets "
                f"of the {stats.num_titles} training titles (most titles cannot give k distinct snippets)"
            )
            continue
        if isinstance(w, int) and w > 0 and w >= stats.max_snippets and not (isinstance(k, int) and w == k):
            notes.append(
                f"skipped {label}: w = {w} >= the longest title ({stats.max_snippets} snippets), the same as "
                "w = M_n (no window) on this catalog"
            )
            continue
        kept.append(dict(point))
    return kept, notes


# ---------------------------------------------------------------------------------------------
# Run names
# ---------------------------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return "x".join(_fmt(v) for v in value)
    return str(value)


def _sampler_part(value: Any) -> str:
    if value == "HierarchicalSampler":
        return ""  # the paper's policy: named by k and w alone
    if value == "IIDSampler":
        return "iid"
    text = str(value)
    return (text[: -len("Sampler")] if text.endswith("Sampler") and len(text) > 7 else text).lower()


#: How a key appears in a run name: a prefix before the value, or a function of the value.
NAME_PARTS: dict[str, str | Callable[[Any], str]] = {
    "SAMPLER.K": "k",
    "SAMPLER.NAME": _sampler_part,
    "SAMPLER.WINDOW": "w",
    "INPUT.VIDEO.COLOR_JITTER": "sigma",
    "LOSS.NORMALIZE": "l2",
    "LOSS.TEMPERATURE": "tau",
    "SEED": "seed",
}


def run_name(overrides: Mapping[str, Any]) -> str:
    """A readable folder name for ``overrides`` (``{"SAMPLER.K": 4, "SAMPLER.WINDOW": 0}`` -> ``k4_w0``).

    Known keys (:data:`NAME_PARTS`) get short prefixes; any other key is its last component in
    lower case followed by the value (``SOLVER.BASE_LR=0.01`` -> ``base-lr0.01``).  Parts are
    joined by ``_``; inside a part, characters outside ``[A-Za-z0-9.+-]`` become ``-``.  No
    overrides: ``base``.
    """
    parts = []
    for key, value in overrides.items():
        rule = NAME_PARTS.get(key, key.rsplit(".", 1)[-1].lower())
        part = rule(value) if callable(rule) else f"{rule}{_fmt(value)}"
        if part:
            parts.append(re.sub(r"[^A-Za-z0-9.+-]+", "-", part).strip("-"))
    return "_".join(p for p in parts if p) or "base"


def unique_names(points: Sequence[Mapping[str, Any]], taken: Iterable[str] = ()) -> list[str]:
    """:func:`run_name` of each point, with ``-2``, ``-3``... appended to repeats (and to ``taken``)."""
    used = set(taken)
    names = []
    for point in points:
        base = run_name(point)
        name, i = base, 1
        while name in used:
            i += 1
            name = f"{base}-{i}"
        used.add(name)
        names.append(name)
    return names


def opts_of(overrides: Mapping[str, Any]) -> list[str]:
    """Flat ``KEY VALUE`` strings for ``load_config`` (strings as they are, other values by ``repr``)."""
    out = []
    for key, value in overrides.items():
        out += [key, value if isinstance(value, str) else repr(value)]
    return out


# ---------------------------------------------------------------------------------------------
# The sweep record
# ---------------------------------------------------------------------------------------------
def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write_json(path: Path, data: Any) -> None:
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


def make_run(
    name: str,
    overrides: Mapping[str, Any],
    *,
    cfg_file: str,
    opts: Sequence[str] = (),
    plugins: Sequence[str] = (),
    evals: Sequence[str] = (),
    baseline: bool = False,
) -> dict[str, Any]:
    """A run entry of ``sweep.json``: everything needed to rebuild its cfg anywhere."""
    return {
        "name": name,
        "overrides": dict(overrides),
        "baseline": bool(baseline),
        "cfg": str(cfg_file),
        "opts": [str(o) for o in opts],
        "plugins": list(plugins),
        "evals": [str(e) for e in evals],
    }


def plan_runs(
    points: Sequence[Mapping[str, Any]],
    *,
    cfg_file: str,
    opts: Sequence[str] = (),
    plugins: Sequence[str] = (),
    evals: Sequence[str] = (),
    baseline: bool = True,
    world_size: int | None = None,
) -> list[dict[str, Any]]:
    """Run entries for ``points`` (plus the baselines first when ``baseline``), each validated.

    The baselines are :func:`baseline_points`.  A point whose cfg does not load or validate gets
    ``status: "invalid"`` and the error message.
    """
    runs = []
    if baseline:
        for overrides in baseline_points(points):
            name = f"{BASELINE_NAME}_{run_name(overrides)}" if overrides else BASELINE_NAME
            runs.append(make_run(name, overrides, cfg_file=cfg_file, opts=opts, plugins=plugins, evals=evals, baseline=True))
    for name, point in zip(unique_names(points, taken=[r["name"] for r in runs]), points):
        runs.append(make_run(name, point, cfg_file=cfg_file, opts=opts, plugins=plugins, evals=evals))
    for run in runs:
        try:
            run_cfg(run, Path("."), world_size=world_size)
        except ValueError as exc:  # ConfigError, or a value fvcore could not merge
            run["status"], run["error"] = "invalid", str(exc)
    return runs


def baseline_points(points: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Overrides of the randomly initialized baselines of a sweep over ``points``: one per distinct
    ``SEED`` of the points (``[{"SEED": 0}, {"SEED": 1}, ...]``, in order of appearance), or one
    without overrides (``[{}]``) when no point sets ``SEED``.  Only the seed changes random
    weights; the other keys of a sampling sweep do not reach a model that is not pretrained."""
    seeds = list(dict.fromkeys(point["SEED"] for point in points if "SEED" in point))
    return [{"SEED": seed} for seed in seeds] or [{}]


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
    record = record or {"version": RECORD_VERSION, "created": _now(), "runs": [], "notes": []}
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
    record["updated"] = _now()
    _write_json(path, record)
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
    record["updated"] = _now()
    _write_json(sweep_dir / "sweep.json", record)
    counts: dict[str, int] = {}
    for run in record["runs"]:
        counts[run["status"]] = counts.get(run["status"], 0) + 1
    return counts


# ---------------------------------------------------------------------------------------------
# Configs of a run
# ---------------------------------------------------------------------------------------------
def run_cfg(run: Mapping[str, Any], sweep_dir: str | os.PathLike, *, world_size: int | None = None):
    """The frozen pretraining cfg of ``run``: recipe + common overrides + the run's overrides, OUTPUT_DIR = its folder."""
    from avplug.config import load_config

    opts = list(run["opts"]) + opts_of(run["overrides"]) + ["OUTPUT_DIR", str(run_dir(sweep_dir, run))]
    return load_config(run["cfg"], opts, plugins=run.get("plugins", ()), world_size=world_size)


def eval_names(evals: Sequence[str]) -> list[str]:
    """Folder names under ``<run>/eval/`` for evaluation recipes: their stems, repeats suffixed."""
    names: list[str] = []
    for recipe in evals:
        stem = Path(str(recipe)).stem or "eval"
        name, i = stem, 1
        while name in names:
            i += 1
            name = f"{stem}-{i}"
        names.append(name)
    return names


def eval_cfg(run: Mapping[str, Any], sweep_dir: str | os.PathLike, recipe: str, name: str):
    """The evaluation cfg of ``run`` for ``recipe``: the recipe + the run's common and own
    overrides (so model and input match the run's pretraining), OUTPUT_DIR = ``<run>/eval/<name>``."""
    from avplug.config import load_config

    out = run_dir(sweep_dir, run) / "eval" / name
    opts = list(run["opts"]) + opts_of(run["overrides"]) + ["OUTPUT_DIR", str(out)]
    return load_config(recipe, opts, plugins=run.get("plugins", ()))


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, Mapping):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: list(tree) if isinstance(tree, tuple) else tree}


def flat_cfg(cfg) -> dict[str, Any]:
    """``{"SAMPLER.K": 4, ...}``: every key of ``cfg`` with its value as YAML has it (tuples as lists)."""
    import yaml

    return _flatten(yaml.safe_load(cfg.dump()) or {})


def check_run_dir(cfg, out: Path) -> None:
    """Raise :class:`SweepError` when ``out`` holds checkpoints of a different cfg (naming the keys)."""
    import yaml

    stored_path = out / "config.yaml"
    if not stored_path.is_file() or not (out / "checkpoints").is_dir():
        return
    try:
        stored = _flatten(yaml.safe_load(stored_path.read_text()) or {})
    except yaml.YAMLError as exc:
        raise SweepError(f"{stored_path}: unreadable ({exc}); remove {out} to start this run afresh") from exc
    current = flat_cfg(cfg)
    diffs = sorted(k for k in set(stored) | set(current) if stored.get(k, _MISSING) != current.get(k, _MISSING))
    if diffs:
        shown = "; ".join(f"{k}: {stored.get(k, '(absent)')!r} -> {current.get(k, '(absent)')!r}" for k in diffs[:8])
        raise SweepError(
            f"{out} holds a run of another config ({shown}{'; ...' if len(diffs) > 8 else ''}); "
            "remove that folder to redo the run, or use another --out"
        )


# ---------------------------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------------------------
def _default_pretrain(cfg) -> dict[str, Any]:
    from avplug.engine.launch import default_num_procs, launch_local

    return launch_local(cfg, cfg.LAUNCH.PROCS_PER_NODE or default_num_procs(), resume=True)


def pretrain_stage(run: Mapping[str, Any], sweep_dir: str | os.PathLike, cfg, pretrain: Callable[[Any], dict] | None = None) -> dict[str, Any]:
    """Pretrain ``run`` unless ``pretrain.json`` says it finished; returns the engine's summary.

    ``pretrain(cfg) -> summary`` defaults to ``launch_local`` with LAUNCH.PROCS_PER_NODE (or one
    rank per GPU) ranks; the engine resumes from the run's last checkpoint.  Only the main process
    writes ``pretrain.json``.
    """
    out = run_dir(sweep_dir, run)
    done = read_json(out / "pretrain.json")
    if isinstance(done, dict) and done.get("last_checkpoint") and Path(done["last_checkpoint"]).is_file():
        logger.info("%s: pretraining finished earlier (%s steps), skipped", run["name"], done.get("steps"))
        return done
    check_run_dir(cfg, out)
    start = time.perf_counter()
    summary = dict((pretrain or _default_pretrain)(cfg))
    if not summary.get("last_checkpoint"):
        raise RuntimeError(f"{run['name']}: pretraining wrote no checkpoint into {out / 'checkpoints'}")
    summary["seconds"] = round(time.perf_counter() - start, 3)
    from avplug.engine import distributed as du

    if du.is_main_process():
        _write_json(out / "pretrain.json", summary)
    return summary


def _last_discrepancy_record(metrics_path: Path) -> dict[str, Any] | None:
    from avplug.evaluation.discrepancy import MEASURE_KEYS

    if not metrics_path.is_file():
        return None
    from avplug.engine.metrics import read_metrics

    try:
        records = [r for r in read_metrics(metrics_path) if all(k in r for k in MEASURE_KEYS)]
    except (OSError, ValueError, KeyError):
        return None
    return records[-1] if records else None


def _default_discrepancy(cfg, weights: str | None, out: Path, device) -> dict[str, Any]:
    """The measures of the checkpoint ``weights`` (None: a randomly initialized model, seeded by SEED)."""
    import torch

    from avplug.evaluation.discrepancy import evaluate_discrepancy
    from avplug.models import build_model

    torch.manual_seed(cfg.SEED)
    model = build_model(cfg)
    if weights:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("model", state))
    model.to(device).eval()
    return evaluate_discrepancy(cfg, model, device, plot_path=out / "score_histograms.png")


def discrepancy_stage(run, sweep_dir, cfg, weights: str | None, step: int | None, *, discrepancy=None, device=None) -> dict[str, Any]:
    """The measures of the run's final model on held-out titles, written to ``discrepancy.json``.

    Skipped when ``discrepancy.json`` exists for the same weights; reused from ``metrics.jsonl``
    when the engine measured the final step; else computed (``discrepancy(cfg, weights, out,
    device)`` defaults to :func:`evaluate_discrepancy` on the checkpoint).  A catalog that cannot
    give the measures (no or too few held-out snippets: ``ValueError``/``LookupError``/``OSError``,
    as the engine skips them) yields ``{"error": ...}`` instead, so the run still finishes and the
    report shows the measures as missing with that reason.
    """
    out = run_dir(sweep_dir, run)
    path = out / "discrepancy.json"
    done = read_json(path)
    if isinstance(done, dict) and done.get("weights") == (weights or "none"):
        return done
    record = _last_discrepancy_record(out / "metrics.jsonl") if weights else None
    if record is not None and step is not None and int(record["step"]) == int(step):
        result = {**record, "source": "metrics.jsonl"}
    else:
        device = device or ("cuda" if _cuda() else "cpu")
        try:
            result = dict((discrepancy or _default_discrepancy)(cfg, weights, out, device))
        except (ValueError, LookupError, OSError) as exc:
            logger.warning("%s: no discrepancy measures: %s", run["name"], exc)
            result = {"error": f"{type(exc).__name__}: {exc}"}
        result["step"] = step
        result["source"] = "final model"
    result["weights"] = weights or "none"
    _write_json(path, result)
    return result


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _default_evaluate(cfg, weights: str, device) -> dict[str, Any]:
    from avplug.config import write_config
    from avplug.evaluation.downstream import run_evaluation

    write_config(cfg, cfg.OUTPUT_DIR)
    return run_evaluation(cfg, weights, device=device)


def evaluation_stage(run, sweep_dir, weights: str, *, evaluate=None, device=None) -> tuple[dict[str, Any], list[str]]:
    """Downstream evaluation of ``weights`` with each recipe of ``run["evals"]``.

    Returns ``({dataset: aggregate summary without PER_CLIP_KEYS}, errors)`` (the per-clip tables
    stay in the recipe's own ``results.json``); a recipe whose ``results.json`` exists for
    the same weights is not rerun.  ``evaluate(cfg, weights, device) -> summary`` defaults to
    :func:`avplug.evaluation.downstream.run_evaluation`.  A failing recipe is reported in
    ``errors`` and the others still run.
    """
    results: dict[str, Any] = {}
    errors: list[str] = []
    for recipe, name in zip(run["evals"], eval_names(run["evals"])):
        try:
            cfg = eval_cfg(run, sweep_dir, recipe, name)
            path = Path(cfg.OUTPUT_DIR) / "results.json"
            summary = read_json(path)
            if not (isinstance(summary, dict) and summary.get("weights") == weights):
                logger.info("%s: evaluating with %s (%s, %s)", run["name"], recipe, cfg.EVAL.DOWNSTREAM.DATASET, cfg.EVAL.DOWNSTREAM.PROTOCOL)
                summary = (evaluate or _default_evaluate)(cfg, weights, device)
            summary = {**{k: v for k, v in summary.items() if k not in PER_CLIP_KEYS}, "recipe": str(recipe)}
            key = summary.get("dataset", name)
            results[key if key not in results else f"{key} ({name})"] = summary
        except Exception as exc:  # one recipe failing must not lose the others
            logger.error("%s: evaluation with %s failed: %s", run["name"], recipe, exc)
            errors.append(f"{recipe}: {type(exc).__name__}: {exc}")
    return results, errors


def _set_state(out: Path, **state: Any) -> dict[str, Any]:
    path = out / "run.json"
    current = read_json(path)
    current = current if isinstance(current, dict) else {}
    current.update(version=RECORD_VERSION, **state)
    _write_json(path, current)
    return current


def execute_run(
    run: Mapping[str, Any],
    sweep_dir: str | os.PathLike,
    *,
    pretrain: Callable[[Any], dict] | None = None,
    discrepancy: Callable[..., dict] | None = None,
    evaluate: Callable[..., dict] | None = None,
    device: Any = None,
    world_size: int | None = None,
) -> dict[str, Any]:
    """Pretrain, measure and evaluate one run (each stage idempotent); returns ``results.json``'s content.

    Writes ``run.json`` with status ``running``, then ``finished`` or ``failed`` (with ``error``);
    an exception of a stage is re-raised after recording it.  An ``invalid`` run is not run.
    The stage callables are for tests and for the Slurm job (see :func:`pretrain_stage`,
    :func:`discrepancy_stage`, :func:`evaluation_stage`).
    """
    if run.get("status") == "invalid":
        raise SweepError(f"{run['name']} is invalid: {run.get('error')}")
    out = run_dir(sweep_dir, run)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    _set_state(out, name=run["name"], status="running", started=_now(), error=None, ended=None, seconds=None,
               host=os.uname().nodename)
    try:
        cfg = run_cfg(run, sweep_dir, world_size=world_size)
        if run.get("baseline"):
            from avplug.config import write_config

            write_config(cfg, out)
            weights, steps, summary = None, 0, {"steps": 0, "last_checkpoint": "", "final_loss": None}
        else:
            summary = pretrain_stage(run, sweep_dir, cfg, pretrain)
            weights, steps = summary["last_checkpoint"], int(summary["steps"])
        measures = discrepancy_stage(run, sweep_dir, cfg, weights, steps, discrepancy=discrepancy, device=device)
        downstream, errors = evaluation_stage(run, sweep_dir, weights or "none", evaluate=evaluate, device=device)
        result = {
            "name": run["name"],
            "overrides": dict(run["overrides"]),
            "baseline": bool(run.get("baseline")),
            "checkpoint": weights or "none",
            "steps": steps,
            "final_loss": summary.get("final_loss"),
            "discrepancy": measures,
            "downstream": downstream,
            "evals": list(run["evals"]),
            "errors": errors,
        }
        _write_json(out / "results.json", result)
        if errors:
            raise RuntimeError("; ".join(errors))
    except BaseException as exc:
        status = "failed" if isinstance(exc, Exception) else "running"  # Ctrl-C / SIGTERM: left resumable
        _set_state(out, status=status, error=f"{type(exc).__name__}: {exc}", ended=_now(), seconds=round(time.perf_counter() - started, 3))
        raise
    _set_state(out, status="finished", ended=_now(), seconds=round(time.perf_counter() - started, 3), evals=list(run["evals"]))
    logger.info("%s: finished in %.0f s", run["name"], time.perf_counter() - started)
    return result


def is_finished(sweep_dir: str | os.PathLike, run: Mapping[str, Any]) -> bool:
    """True when ``run`` finished with every evaluation recipe it now asks for, and its files are there.

    Finished means: ``run.json`` says ``finished``, ``results.json`` exists and names the final
    checkpoint, that checkpoint exists (not for the baseline), and the recorded evaluation
    recipes include every recipe of ``run["evals"]``.
    """
    out = run_dir(sweep_dir, run)
    state = read_json(out / "run.json")
    result = read_json(out / "results.json")
    if not (isinstance(state, dict) and state.get("status") == "finished" and isinstance(result, dict)):
        return False
    if not set(run.get("evals", [])) <= set(state.get("evals", [])):
        return False
    checkpoint = result.get("checkpoint", "")
    return bool(run.get("baseline")) or (bool(checkpoint) and Path(checkpoint).is_file())


# ---------------------------------------------------------------------------------------------
# A local sweep
# ---------------------------------------------------------------------------------------------
def _hms(seconds: float) -> str:
    s = int(max(0, round(seconds)))
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}"


def run_sweep(
    sweep_dir: str | os.PathLike,
    runs: Sequence[Mapping[str, Any]],
    *,
    runner: Callable[..., dict] | None = None,
    **runner_kwargs: Any,
) -> dict[str, str]:
    """Run ``runs`` one after another in this process; returns ``{name: final status}``.

    Finished runs (:func:`is_finished`) and invalid ones are skipped; a run that raises is
    recorded as failed (with its traceback in the log) and the sweep continues.  ``runner(run,
    sweep_dir, **runner_kwargs)`` defaults to :func:`execute_run`.  Progress lines give the run
    index, elapsed time and an ETA from the mean time of the runs done so far.
    """
    runner = runner or execute_run
    todo = [r for r in runs if r.get("status") != "invalid" and not is_finished(sweep_dir, r)]
    final: dict[str, str] = {}
    for run in runs:
        if run.get("status") == "invalid":
            final[run["name"]] = "invalid"
            logger.warning("%s: invalid, not run: %s", run["name"], run.get("error"))
        elif run not in todo:
            final[run["name"]] = "finished"
            logger.info("%s: finished earlier, skipped", run["name"])
    start = time.perf_counter()
    for i, run in enumerate(todo):
        elapsed = time.perf_counter() - start
        eta = f", ETA {_hms(elapsed / i * (len(todo) - i))}" if i else ""
        logger.info("sweep: run %d/%d %s %s (elapsed %s%s)", i + 1, len(todo), run["name"], run["overrides"], _hms(elapsed), eta)
        try:
            runner(run, sweep_dir, **runner_kwargs)
            final[run["name"]] = "finished"
        except Exception as exc:  # recorded in run.json by execute_run; the next runs still go
            final[run["name"]] = "failed"
            logger.error("%s failed: %s\n%s", run["name"], exc, traceback.format_exc())
    logger.info("sweep: %d run(s) in %s: %s", len(todo), _hms(time.perf_counter() - start),
                ", ".join(f"{n} {s}" for n, s in final.items()))
    return final
