"""Fixtures of the sampler tests: cfgs without loading plugins, and whole-world batch helpers."""
from __future__ import annotations

import pytest

import avplug.samplers  # noqa: F401  (registers the built-in policies)
from avplug.config import get_cfg, validate_cfg


def _make_cfg(opts: dict | None = None, *, world_size: int | None = None):
    """Defaults + ``opts`` (``{"SAMPLER.K": 4, ...}``), validated and frozen; no plugin import."""
    cfg = get_cfg()
    flat = []
    for key, value in (opts or {}).items():
        flat += [key, str(value)]
    cfg.merge_from_list(flat)
    validate_cfg(cfg, world_size=world_size)
    cfg.freeze()
    return cfg


@pytest.fixture(scope="session")
def make_cfg():
    return _make_cfg


def _world(cfg, titles, world_size: int, seed: int = 0):
    from avplug.samplers import build_sampler

    return [build_sampler(cfg, titles, world_size=world_size, rank=r, seed=seed) for r in range(world_size)]


@pytest.fixture(scope="session")
def world():
    """``world(cfg, titles, W, seed=0)``: one sampler per rank, as W trainer processes build them."""
    return _world
