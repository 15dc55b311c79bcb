"""Run names: readable folder names for override points (``k4_w0``, ``k1_iid_w0``, ``k16_w0_l2on_tau0.07``).

:func:`run_name` names one point; :func:`unique_names` names a list, suffixing repeats
(:func:`suffix_repeats`: ``-2``, ``-3``, ...).  Names are folder names under ``SWEEP_DIR`` and the
keys of the sweep record, so they must not change for the same overrides.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return "x".join(_fmt(v) for v in value)
    return str(value)


def _sampler_part(value: Any) -> str:
    if value == "HierarchicalSampler":
        return ""  # the paper's policy: named by k and w alone
    if value == "IIDSampler":
        return "iid"
    text = str(value)
    return (text[: -len("Sampler")] if text.endswith("Sampler") and len(text) > 7 else text).lower()


#: How a key appears in a run name: a prefix before the value, or a function of the value.
NAME_PARTS: dict[str, str | Callable[[Any], str]] = {
    "SAMPLER.K": "k",
    "SAMPLER.NAME": _sampler_part,
    "SAMPLER.WINDOW": "w",
    "INPUT.VIDEO.COLOR_JITTER": "sigma",
    "LOSS.NORMALIZE": "l2",
    "LOSS.TEMPERATURE": "tau",
    "SEED": "seed",
}


def run_name(overrides: Mapping[str, Any]) -> str:
    """A readable folder name for ``overrides`` (``{"SAMPLER.K": 4, "SAMPLER.WINDOW": 0}`` -> ``k4_w0``).

    Known keys (:data:`NAME_PARTS`) get short prefixes; any other key is its last component in
    lower case followed by the value (``SOLVER.BASE_LR=0.01`` -> ``base-lr0.01``).  Parts are
    joined by ``_``; inside a part, characters outside ``[A-Za-z0-9.+-]`` become ``-``.  No
    overrides: ``base``.
    """
    parts = []
    for key, value in overrides.items():
        rule = NAME_PARTS.get(key, key.rsplit(".", 1)[-1].lower())
        part = rule(value) if callable(rule) else f"{rule}{_fmt(value)}"
        if part:
            parts.append(re.sub(r"[^A-Za-z0-9.+-]+", "-", part).strip("-"))
    return "_".join(p for p in parts if p) or "base"


def suffix_repeats(bases: Iterable[str], taken: Iterable[str] = ()) -> list[str]:
    """``bases`` with ``-2``, ``-3``... appended to each name already used (earlier in ``bases`` or in ``taken``)."""
    used = set(taken)
    names = []
    for base in bases:
        name, i = base, 1
        while name in used:
            i += 1
            name = f"{base}-{i}"
        used.add(name)
        names.append(name)
    return names


def unique_names(points: Sequence[Mapping[str, Any]], taken: Iterable[str] = ()) -> list[str]:
    """:func:`run_name` of each point, with ``-2``, ``-3``... appended to repeats (and to ``taken``)."""
    return suffix_repeats((run_name(point) for point in points), taken)
