"""Loading avplug's built-in plugins and third-party ones, in one place."""
from __future__ import annotations

import importlib
from typing import Iterable

import registry

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
    """Register the built-ins, then third-party plugins: entry points and ``modules``."""
    register_builtins()
    return registry.load_plugins(list(modules))
