"""The configs of a run: its pretraining cfg, its evaluation cfgs, and the check that its folder is its own.

A run entry of ``sweep.json`` (:func:`avplug.experiments.planning.make_run`) rebuilds its cfg
anywhere: the base recipe, then the overrides common to all runs (``opts``), then the run's own
overrides, then ``OUTPUT_DIR`` (its folder, or ``<run>/eval/<recipe name>`` for an evaluation).
Resolved cfgs compare as flat ``{"SAMPLER.K": 4, ...}`` dicts (:func:`flatten_tree`), as the
reports read them from ``config.yaml``.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from avplug.config import load_config
from avplug.experiments import SweepError
from avplug.experiments.run_names import suffix_repeats
from avplug.experiments.sweep_record import run_dir

_MISSING = object()


def opts_of(overrides: Mapping[str, Any]) -> list[str]:
    """Flat ``KEY VALUE`` strings for ``load_config`` (strings as they are, other values by ``repr``)."""
    out = []
    for key, value in overrides.items():
        out += [key, value if isinstance(value, str) else repr(value)]
    return out


def run_cfg(run: Mapping[str, Any], sweep_dir: str | os.PathLike, *, world_size: int | None = None):
    """The frozen pretraining cfg of ``run``: recipe + common overrides + the run's overrides, OUTPUT_DIR = its folder."""
    opts = list(run["opts"]) + opts_of(run["overrides"]) + ["OUTPUT_DIR", str(run_dir(sweep_dir, run))]
    return load_config(run["cfg"], opts, plugins=run.get("plugins", ()), world_size=world_size)


def eval_names(evals: Sequence[str]) -> list[str]:
    """Folder names under ``<run>/eval/`` for evaluation recipes: their stems, repeats suffixed."""
    return suffix_repeats(Path(str(recipe)).stem or "eval" for recipe in evals)


def eval_cfg(run: Mapping[str, Any], sweep_dir: str | os.PathLike, recipe: str, name: str):
    """The evaluation cfg of ``run`` for ``recipe``: the recipe + the run's common and own
    overrides (so model and input match the run's pretraining), OUTPUT_DIR = ``<run>/eval/<name>``."""
    out = run_dir(sweep_dir, run) / "eval" / name
    opts = list(run["opts"]) + opts_of(run["overrides"]) + ["OUTPUT_DIR", str(out)]
    return load_config(recipe, opts, plugins=run.get("plugins", ()))


def flatten_tree(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"SAMPLER": {"K": 4}}`` -> ``{"SAMPLER.K": 4}``: nested mappings as dotted keys, tuples as lists."""
    if isinstance(tree, Mapping):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flatten_tree(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: list(tree) if isinstance(tree, tuple) else tree}


def read_flat_yaml(path: Path) -> dict[str, Any]:
    """The YAML file ``path`` (a resolved ``config.yaml``) flattened; raises ``OSError`` / ``yaml.YAMLError``."""
    return flatten_tree(yaml.safe_load(path.read_text()) or {})


def flat_cfg(cfg) -> dict[str, Any]:
    """``{"SAMPLER.K": 4, ...}``: every key of ``cfg`` with its value as YAML has it (tuples as lists)."""
    return flatten_tree(yaml.safe_load(cfg.dump()) or {})


def check_run_dir(cfg, out: Path) -> None:
    """Raise :class:`SweepError` when ``out`` holds checkpoints of a different cfg (naming the keys)."""
    stored_path = out / "config.yaml"
    if not stored_path.is_file() or not (out / "checkpoints").is_dir():
        return
    try:
        stored = read_flat_yaml(stored_path)
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
