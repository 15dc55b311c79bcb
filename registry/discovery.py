"""Explicit plugin discovery and plugin-owned config keys.

Nothing registers by accident: a plugin is a module that registers objects when imported.  It is
loaded by :func:`load_plugins`, from an installed distribution's entry point in the group
``avplug.plugins`` (value ``pkg.module`` or ``pkg.module:callable``, the callable being called with
no arguments after import), or from module names given on the command line (``--plugin``) or in the
cfg (``PLUGINS``).  A plugin that needs cfg keys registers a hook with :func:`register_config_hook`;
the hook receives the defaults ``CfgNode`` before any YAML is merged, so its keys are known.
"""
from __future__ import annotations

import importlib
import logging
import traceback
from importlib.metadata import entry_points
from typing import Any, Callable, Iterable

ENTRY_POINT_GROUP = "avplug.plugins"

_log = logging.getLogger(__name__)
_loaded: dict[str, str] = {}  # plugin name -> where it came from
_config_hooks: list[Callable[[Any], None]] = []


def load_plugins(modules: Iterable[str] = (), *, entry_point_group: str | None = ENTRY_POINT_GROUP) -> list[str]:
    """Import plugin ``modules`` and every entry point of ``entry_point_group``; return the new names.

    Each plugin is imported once.  A plugin that cannot be imported (missing, a syntax error, or an
    exception while it runs) is an ``ImportError`` whose one-line message names it and the error's
    first line (:func:`import_failure`); the original exception is its ``__cause__``.
    """
    new: list[str] = []
    if entry_point_group:
        for ep in entry_points(group=entry_point_group):
            key = f"entry point {ep.name} = {ep.value}"
            if ep.value in _loaded:
                continue
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin must say which one it is
                raise import_failure(f"avplug plugin {key} ({ep.dist.name if ep.dist else '?'})", exc) from exc
            if ep.attr and callable(obj):
                obj()
            _loaded[ep.value] = key
            new.append(ep.value)
    for module in modules:
        if module in _loaded:
            continue
        try:
            importlib.import_module(module)
        except Exception as exc:  # ImportError, SyntaxError, or whatever the module raised
            raise import_failure(f"avplug plugin module {module!r}", exc) from exc
        _loaded[module] = "module"
        new.append(module)
    if new:
        _log.info("loaded avplug plugins: %s", ", ".join(new))
    return new


def import_failure(plugin: str, exc: BaseException) -> ImportError:
    """An ``ImportError`` saying in one line that ``plugin`` failed to import, and why."""
    if isinstance(exc, ModuleNotFoundError):
        return ImportError(f"{plugin} could not be imported: {exc} (is it installed, or on PYTHONPATH?)")
    if isinstance(exc, SyntaxError):
        where = f"{exc.filename}, line {exc.lineno}" if exc.filename else "its source"
        return ImportError(f"{plugin} has a syntax error: {exc.msg} ({where})")
    first = (str(exc).strip().splitlines() or [""])[0]
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "importlib" not in f.filename]
    where = f" at {frames[-1].filename}, line {frames[-1].lineno}" if frames else ""
    return ImportError(f"{plugin} raised {type(exc).__name__}{': ' + first if first else ''} while being imported{where}")


def loaded_plugins() -> dict[str, str]:
    """Plugins loaded so far, mapped to how they were found."""
    return dict(_loaded)


def register_config_hook(hook: Callable[[Any], None]) -> Callable[[Any], None]:
    """Register ``hook(cfg)`` that adds a plugin's own keys (with defaults) to the defaults cfg.

    Usable as a decorator.  Registering the same function twice has no effect.
    """
    if hook not in _config_hooks:
        _config_hooks.append(hook)
    return hook


def apply_config_hooks(cfg: Any) -> None:
    """Run every registered config hook on ``cfg`` (the unfrozen defaults)."""
    for hook in _config_hooks:
        hook(cfg)
