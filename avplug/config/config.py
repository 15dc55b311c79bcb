"""Building a cfg from defaults, plugin hooks, a YAML recipe and ``KEY VALUE`` overrides.

Everything is checked as it is loaded and refused with a one-line :class:`ConfigError`: the recipe
file (:mod:`avplug.config.recipe`), its keys and value types (blamed on the file), each override
(``override KEY VALUE (command line): ...``), ``PLUGINS`` (a list of module names), the plugins
themselves (:class:`avplug.builtin_plugins.PluginError`), the registered names the cfg asks for and
every value (:func:`avplug.config.validate.validate_cfg`).
"""
from __future__ import annotations

import ast
import difflib
import os
import sys
from pathlib import Path
from typing import Iterable, Sequence

from fvcore.common.config import CfgNode

import registry
from avplug.builtin_plugins import setup_plugins
from avplug.config.defaults import default_cfg
from avplug.config.errors import ConfigError
from avplug.config.recipe import read_recipe
from avplug.config.validate import check_registered_names, validate_cfg


def _shipped_config_dir() -> Path:
    """``configs/`` of the checkout (editable install) or ``<prefix>/share/avplug/configs`` (wheel)."""
    checkout = Path(__file__).resolve().parents[2] / "configs"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "avplug" / "configs"


CONFIG_DIR = _shipped_config_dir()


def get_cfg() -> CfgNode:
    """A fresh, unfrozen copy of the defaults with every loaded plugin's keys added."""
    cfg = default_cfg()
    registry.apply_config_hooks(cfg)
    return cfg


def _shipped_recipe(name: str) -> Path | None:
    for candidate in (CONFIG_DIR / name, CONFIG_DIR / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    return None


def resolve_config_path(name_or_path: str | os.PathLike) -> Path:
    """A path as given if it exists, else a shipped recipe of that name (``movie_tv.yaml``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path.resolve()
    shipped = _shipped_recipe(str(path))
    if shipped is not None:
        return shipped
    names = ", ".join(sorted(p.name for p in CONFIG_DIR.glob("*.yaml")))
    raise ConfigError(f"config {str(name_or_path)!r} is neither a file nor a shipped recipe ({names})")


def _plugin_list(value, where: str, *, literal: bool = False) -> list[str]:
    """``value`` (a PLUGINS setting; a Python literal string when ``literal``) as a list of module
    names, or a ConfigError blamed on ``where``."""
    if literal:
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError) as exc:
            raise ConfigError(f"{where}: not a Python list of module names, e.g. \"['my.plugin']\"") from exc
    if not isinstance(value, (list, tuple)) or not all(isinstance(m, str) and m for m in value):
        raise ConfigError(f"{where}: expected a list of plugin module names, e.g. ['my.plugin'], got {value!r}")
    return list(value)


def _plugins_named_in_opts(opts: Sequence[str]) -> list[str]:
    for key, value in zip(opts[0::2], opts[1::2]):
        if key == "PLUGINS":
            return _plugin_list(value, f"override PLUGINS {value} (command line)", literal=True)
    return []


def _flat_items(data: dict, prefix: str = ""):
    """``(KEY.SUB, value)`` for every leaf of a nested mapping."""
    for key, value in data.items():
        if isinstance(value, dict):  # an empty mapping sets nothing
            yield from _flat_items(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _merge_value(cfg: CfgNode, key: str, value, where: str) -> None:
    """Set ``cfg[key] = value`` as yacs does (strings from the command line are Python literals),
    a ConfigError blamed on ``where`` when the key does not exist or the type does not fit."""
    node, parts = cfg, key.split(".")
    for depth, part in enumerate(parts):
        if not isinstance(node, CfgNode) or part not in node:
            parent = ".".join(parts[:depth])
            known = list(node.keys()) if isinstance(node, CfgNode) else []
            close = difflib.get_close_matches(part, known, n=1)
            hint = f"; did you mean {'.'.join([*parts[:depth], close[0]])}?" if close else ""
            scope = f"under {parent}" if parent else "at the top level"
            raise ConfigError(f"{where}: unknown config key {key} (no {part} {scope}){hint}")
        old = node[part] if depth == len(parts) - 1 else None
        node = node[part]
    if isinstance(old, float) and isinstance(value, str):
        value = _literal(value)
    if isinstance(old, float) and type(value) is int:
        value = float(value)
    try:
        cfg.merge_from_list([key, value])
    except (ValueError, AssertionError, KeyError) as exc:
        kind = "a group of keys" if isinstance(old, CfgNode) else f"{_kind(old)} (the default is {old!r})"
        raise ConfigError(f"{where}: expected {kind}") from exc


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _kind(value) -> str:
    names = {bool: "True or False", int: "an integer", float: "a number", str: "a string", list: "a list", tuple: "a list"}
    return names.get(type(value), type(value).__name__)


def load_config(
    cfg_file: str | os.PathLike | None = None,
    opts: Sequence[str] = (),
    plugins: Iterable[str] = (),
    *,
    freeze: bool = True,
    world_size: int | None = None,
) -> CfgNode:
    """Load plugins, then build, merge, validate and (by default) freeze a cfg.

    ``opts`` are flat ``KEY VALUE`` pairs.  ``world_size`` (if known) is checked against the batch.
    A bad recipe is blamed on its file, a bad override on the command line (``override KEY VALUE
    (command line): ...``).
    """
    opts = list(opts)
    if len(opts) % 2:
        raise ConfigError(f"overrides must come as KEY VALUE pairs, got an odd number (command line): {' '.join(map(str, opts))}")
    path = resolve_config_path(cfg_file) if cfg_file else None
    recipe = read_recipe(path, _shipped_recipe) if path else {}
    from_recipe = _plugin_list(recipe["PLUGINS"], f"{path}: PLUGINS") if "PLUGINS" in recipe else []
    wanted = list(plugins) + from_recipe + _plugins_named_in_opts(opts)
    setup_plugins(wanted)
    cfg = get_cfg()
    for key, value in _flat_items(recipe):
        _merge_value(cfg, key, value, f"{path}: {key} = {value!r}")
    for key, value in zip(opts[0::2], opts[1::2]):
        _merge_value(cfg, str(key), value, f"override {key} {value} (command line)")
    cfg.PLUGINS = sorted(set(cfg.PLUGINS) | set(wanted))
    check_registered_names(cfg)
    validate_cfg(cfg, world_size=world_size)
    if freeze:
        cfg.freeze()
    return cfg


def write_config(cfg: CfgNode, output_dir: str | os.PathLike) -> Path:
    """Write the resolved cfg to ``output_dir/config.yaml`` atomically and return its path."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / "config.yaml"
    tmp = target.with_suffix(".yaml.tmp")
    tmp.write_text(cfg.dump())
    os.replace(tmp, target)
    return target
