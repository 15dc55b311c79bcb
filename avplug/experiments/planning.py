"""Planning a sweep: the run entries of ``sweep.json`` for a list of points, each validated.

:func:`plan_runs` puts the randomly initialized baselines first (``random_init``; one per seed,
``random_init_seed0``, ..., when the points set ``SEED``: the seed draws the random weights), then
one run per point named by :func:`avplug.experiments.run_names.unique_names`.  A point whose cfg
does not load or validate is kept with ``status: "invalid"`` and its error.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from avplug.experiments.run_configs import run_cfg
from avplug.experiments.run_names import run_name, unique_names

#: Name of the randomly initialized baseline run.
BASELINE_NAME = "random_init"


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
