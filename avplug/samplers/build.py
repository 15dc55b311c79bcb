"""``build_sampler``: the one way the trainer and the tools turn ``cfg.SAMPLER.NAME`` into a sampler."""
from __future__ import annotations

from collections.abc import Sequence

import registry
from avplug.data.index import TitleRecord

_REQUIRED = ("set_epoch", "state_dict", "load_state_dict", "__iter__", "__len__")


def build_sampler(cfg, titles: Sequence[TitleRecord], *, world_size: int = 1, rank: int = 0, seed: int | None = None):
    """Build the policy ``cfg.SAMPLER.NAME`` for ``rank`` of ``world_size`` (``seed``: ``cfg.SEED``).

    The object is checked against the ``SAMPLERS`` contract (``set_epoch``, ``__iter__``,
    ``__len__``, ``state_dict``, ``load_state_dict``); a plugin missing one is a ``TypeError``.
    """
    factory = registry.SAMPLERS.get(cfg.SAMPLER.NAME)
    sampler = factory(cfg, list(titles), world_size=world_size, rank=rank, seed=cfg.SEED if seed is None else seed)
    missing = [m for m in _REQUIRED if not callable(getattr(sampler, m, None))]
    if missing:
        raise TypeError(
            f"SAMPLERS entry {cfg.SAMPLER.NAME!r} ({getattr(factory, '__module__', '?')}) returned "
            f"{type(sampler).__name__}, which lacks {', '.join(missing)} of the sampler contract"
        )
    return sampler
