"""Loading avplug's built-in plugins and third-party ones, in one place."""
from __future__ import annotations

import importlib
from typing import Iterable

import registry
from avplug.errors import UserError


class PluginError(UserError, ImportError):
    """A plugin module (``--plugin``, ``PLUGINS`` or an entry point) that is missing, has a syntax
    error or raised while being imported; the message names it and the error's first line."""

# Every module of avplug that registers objects.  Adding a built-in means adding it here.
BUILTIN_MODULES = (
    "avplug.models",
    "avplug.losses",
    "avplug.samplers",
    "avplug.data.decoders",
    "avplug.data.downstream_datasets",
    "avplug.evaluation.heldout_hook",
)


def register_builtins() -> None:
    """Import every avplug module that registers objects (idempotent)."""
    for module in BUILTIN_MODULES:
        importlib.import_module(module)


def setup_plugins(modules: Iterable[str] = ()) -> list[str]:
    """Register the built-ins, then third-party plugins: entry points and ``modules``.

    A third-party plugin that fails to import is a :class:`PluginError`."""
    register_builtins()
    try:
        return registry.load_plugins(list(modules))
    except ImportError as exc:
        raise PluginError(str(exc)) from exc.__cause__ or exc
