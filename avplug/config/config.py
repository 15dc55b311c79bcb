"""Building a cfg from defaults, plugin hooks, a YAML recipe and ``KEY VALUE`` overrides."""
from __future__ import annotations

import ast
import os
import sys
from pathlib import Path
from typing import Iterable, Sequence

from fvcore.common.config import CfgNode

import registry
from avplug.builtin_plugins import setup_plugins
from avplug.config.defaults import default_cfg
from avplug.config.errors import ConfigError
from avplug.config.validate import validate_cfg


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


def resolve_config_path(name_or_path: str | os.PathLike) -> Path:
    """A path as given if it exists, else a shipped recipe of that name (``movie_tv.yaml``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path.resolve()
    for candidate in (CONFIG_DIR / path, CONFIG_DIR / f"{path}.yaml"):
        if candidate.is_file():
            return candidate
    shipped = ", ".join(sorted(p.name for p in CONFIG_DIR.glob("*.yaml")))
    raise ConfigError(f"config {str(name_or_path)!r} is neither a file nor a shipped recipe ({shipped})")


def _plugins_named_in(path: Path) -> list[str]:
    data = CfgNode.load_yaml_with_base(str(path), allow_unsafe=False)
    return list(data.get("PLUGINS", []) or [])


def _plugins_named_in_opts(opts: Sequence[str]) -> list[str]:
    for key, value in zip(opts[0::2], opts[1::2]):
        if key == "PLUGINS":
            return list(ast.literal_eval(value))
    return []


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
    """
    opts = list(opts)
    if len(opts) % 2:
        raise ConfigError(f"overrides must come as KEY VALUE pairs, got an odd number: {opts}")
    path = resolve_config_path(cfg_file) if cfg_file else None
    wanted = list(plugins) + (_plugins_named_in(path) if path else []) + _plugins_named_in_opts(opts)
    setup_plugins(wanted)
    cfg = get_cfg()
    try:
        if path is not None:
            cfg.merge_from_file(str(path))
        cfg.merge_from_list(opts)
    except (KeyError, AssertionError, ValueError) as exc:
        raise ConfigError(f"{path or 'overrides'}: {exc}") from exc
    cfg.PLUGINS = sorted(set(cfg.PLUGINS) | set(wanted))
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
