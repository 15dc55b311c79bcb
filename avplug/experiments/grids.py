"""Grids of config overrides: ``"SAMPLER.K=1,4,8"`` is one axis; several axes give their cartesian
product (the first axis varies slowest).

A point is a dict of overrides (``{"SAMPLER.K": 4, "SAMPLER.WINDOW": 0}``).  Values are Python
literals where they parse as one (:func:`parse_value`).  :func:`combine_points` crosses a preset
with grid axes (e.g. several seeds) and :func:`filter_points` restricts a list of points.
"""
from __future__ import annotations

import ast
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from avplug.experiments import SweepError


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
