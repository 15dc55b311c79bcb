"""A registry whose errors say what exists and how plugins are loaded."""
from __future__ import annotations

from typing import Any, Callable

from fvcore.common.registry import Registry as _FvcoreRegistry

HOW_TO_LOAD_PLUGINS = (
    "Plugins are loaded from the entry-point group 'avplug.plugins' of installed distributions, "
    "from '--plugin some.module' on any tool, and from the cfg key PLUGINS: [some.module]."
)


class Registry(_FvcoreRegistry):
    """fvcore ``Registry`` with a stated contract and errors that list the registered names."""

    def __init__(self, name: str, contract: str = "") -> None:
        super().__init__(name)
        self.__doc__ = contract

    def _do_register(self, name: str, obj: Any) -> None:
        if name in self._obj_map:
            previous = self._obj_map[name]
            raise ValueError(
                f"{self._name}: the name {name!r} is already registered by "
                f"{_where(previous)}; {_where(obj)} must use another name."
            )
        self._obj_map[name] = obj

    def get(self, name: str) -> Any:
        obj = self._obj_map.get(name)
        if obj is None:
            known = ", ".join(sorted(self._obj_map)) or "(none)"
            raise KeyError(
                f"No object named {name!r} in the {self._name} registry. "
                f"Registered names: {known}. {HOW_TO_LOAD_PLUGINS}"
            )
        return obj

    def names(self) -> list[str]:
        return sorted(self._obj_map)


def _where(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def build(registry: Registry, node: Any, *args: Any, expected_type: type | tuple[type, ...] | None = None) -> Any:
    """Build ``registry.get(node.NAME)(node, *args)`` and check the result's type.

    ``node`` is a cfg node with a ``NAME`` key.  ``expected_type`` (optional) is what the registry's
    contract promises; anything else is a ``TypeError`` naming the plugin.
    """
    name = node.NAME
    factory: Callable[..., Any] = registry.get(name)
    obj = factory(node, *args)
    if expected_type is not None and not isinstance(obj, expected_type):
        raise TypeError(
            f"{registry._name} entry {name!r} ({_where(factory)}) returned {type(obj).__name__}, "
            f"expected {getattr(expected_type, '__name__', expected_type)}."
        )
    return obj
