"""Reading a YAML recipe and its ``_BASE_`` chain into one plain dict, refusing bad files in one line.

A recipe is a UTF-8 YAML mapping of config keys.  ``_BASE_: other.yaml`` names the recipe it
extends: a path relative to the recipe's folder, else a shipped recipe of that name; the recipe's
keys are merged over its base's (nested mappings key by key).  YAML is read with ``safe_load``: a
tag that would build a Python object (``!!python/object``) is refused, never run.  Every problem
(an unreadable or non-UTF-8 file, a YAML syntax error with its line, an empty file, a top level
that is not a mapping, a missing or circular ``_BASE_``) is a :class:`ConfigError` naming the file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import yaml

from avplug.config.errors import ConfigError

BASE_KEY = "_BASE_"


def read_recipe(path: Path, find_shipped: Callable[[str], Path | None], _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The keys of the recipe at ``path`` merged over those of its ``_BASE_`` chain.

    ``find_shipped(name)`` returns the shipped recipe called ``name``, or None.
    """
    if path in _chain:
        cycle = " -> ".join(p.name for p in (*_chain, path))
        raise ConfigError(f"{_chain[0]}: circular _BASE_ chain {cycle}; remove one of these _BASE_ lines")
    data = _load_mapping(path)
    base = data.pop(BASE_KEY, None)
    if base is None:
        return data
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: _BASE_ = {base!r}: expected the file name of the recipe this one extends")
    merged = read_recipe(_base_path(path, base, find_shipped), find_shipped, (*_chain, path))
    _merge_into(data, merged)
    return merged


def _load_mapping(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the recipe ({exc.strerror or exc})") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}, line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the recipe as UTF-8"
        ) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(_yaml_error_message(path, exc)) from exc
    if data is None:
        raise ConfigError(f"{path}: the recipe is empty; write config keys as a YAML mapping, e.g. '_BASE_: demo.yaml'")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level is a YAML {type(data).__name__}; a recipe is a mapping of config keys "
            "(KEY: value lines, e.g. 'SEED: 1')"
        )
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise ConfigError(f"{path}: key {bad[0]!r} is not a config key name (expected e.g. SOLVER)")
    return data


def _yaml_error_message(path: Path, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"{path}, line {mark.line + 1}" if mark is not None else str(path)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if isinstance(exc, yaml.constructor.ConstructorError) and "constructor for the tag" in problem:
        tag = problem.split("tag", 1)[1].strip(" '").replace("tag:yaml.org,2002:", "!!")
        return f"{where}: the YAML tag {tag} is refused: a recipe holds plain values only (tags that build Python objects never run)"
    context, started = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and started is not None and mark is not None and started.line != mark.line:
        context += f" started on line {started.line + 1}"
    return f"{where}: invalid YAML: {context + ', ' if context else ''}{problem}"


def _base_path(path: Path, base: str, find_shipped: Callable[[str], Path | None]) -> Path:
    candidate = path.parent / Path(base).expanduser()  # an absolute base stays as it is
    if candidate.is_file():
        return candidate.resolve()
    shipped = find_shipped(base)
    if shipped is not None:
        return shipped
    raise ConfigError(f"{path}: _BASE_ {base!r} not found (neither {candidate} nor a shipped recipe)")


def _merge_into(src: dict[str, Any], dst: dict[str, Any]) -> None:
    """Merge ``src`` over ``dst`` in place: nested mappings key by key, anything else replaced."""
    for key, value in src.items():
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            _merge_into(value, dst[key])
        else:
            dst[key] = value
