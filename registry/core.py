"""A registry whose errors say what exists and how plugins are loaded."""
from __future__ import annotations

from typing import Any, Callable

from fvcore.common.registry import Registry as _FvcoreRegistry

HOW_TO_LOAD_PLUGINS = (
    "Plugins are loaded from the entry-point group 'avplug.plugins' of installed distributions, "
    "from '--plugin some.module' on any tool, and from the cfg key PLUGINS: [some.module]."
)


class Registry(_FvcoreRegistry):
    """fvcore ``Registry`` with a stated contract, a ``name=`` form and errors that list the names.

    ``name`` is the registry's own name (``"BACKBONES"``).  An object registers under its
    ``__name__`` unless ``register(name=...)`` gives the name users write in the cfg.
    """

    def __init__(self, name: str, contract: str = "") -> None:
        super().__init__(name)
        self.name = name
        self.__doc__ = contract

    def register(self, obj: Any = None, *, name: str | None = None) -> Any:
        """Register ``obj`` under ``name`` (default ``obj.__name__``); without ``obj``, a decorator.

        ``@BACKBONES.register(name="R2Plus1D18")`` registers a builder function under the name of
        what it builds.  A name registered twice is a ``ValueError`` naming both objects.
        """
        if obj is None:

            def deco(func_or_class: Any) -> Any:
                self._do_register(name or func_or_class.__name__, func_or_class)
                return func_or_class

            return deco
        self._do_register(name or obj.__name__, obj)

    def _do_register(self, name: str, obj: Any) -> None:
        """fvcore's registration hook, refusing a duplicate with a message instead of an assert."""
        if name in self:
            raise ValueError(
                f"{self.name}: the name {name!r} is already registered by "
                f"{_where(super().get(name))}; {_where(obj)} must use another name."
            )
        super()._do_register(name, obj)

    def get(self, name: str) -> Any:
        if name not in self:
            known = ", ".join(self.names()) or "(none)"
            raise KeyError(
                f"No object named {name!r} in the {self.name} registry. "
                f"Registered names: {known}. {HOW_TO_LOAD_PLUGINS}"
            )
        return super().get(name)

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(registered for registered, _ in self)


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
            f"{registry.name} entry {name!r} ({_where(factory)}) returned {type(obj).__name__}, "
            f"expected {getattr(expected_type, '__name__', expected_type)}."
        )
    return obj
