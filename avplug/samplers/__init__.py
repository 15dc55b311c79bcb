"""Minibatch sampling policies over a catalog of long-form titles (paper section 3, "Sampling Policy").

Importing this module registers the built-in policies in ``registry.SAMPLERS``:

- ``IIDSampler``: the paper's baseline (k = 1), snippets uniformly from the union of all titles;
- ``HierarchicalSampler`` (default): a title uniformly, then k distinct snippets of it within a
  window w (``SAMPLER.K``, ``SAMPLER.WINDOW``);
- ``SceneAwareSampler``: the window follows scene boundaries (``SAMPLER.SCENE_MODE``);

and ``SAMPLER.GENRE_BALANCED`` switches the title draw of the group policies to genre-balanced.
The trainer's use::

    sampler = build_sampler(cfg, titles, world_size=W, rank=r)
    for epoch in ...:
        sampler.set_epoch(epoch)
        for batch in sampler:          # B / W (title_id, snippet_index) tuples
            ...
        state = sampler.state_dict()   # {"epoch", "batches_done", ...}; load_state_dict resumes

A new policy is a class registered with ``@registry.SAMPLERS.register()``; subclassing
:class:`GroupSampler` gives it epochs, ranks, resume and the k / window / short-title / layout
handling for free (see ``examples/sampler_plugin``).
"""
from __future__ import annotations

from collections.abc import Sequence

import registry
from avplug.data.index import TitleRecord
from avplug.samplers.base import GroupSampler, SnippetSampler
from avplug.samplers.draws import GenreBalancedDraw, UniformDraw, build_title_draw
from avplug.samplers.inspect import load_titles_for, rank_batches, sampler_stats
from avplug.samplers.policies import HierarchicalSampler, IIDSampler, SceneAwareSampler
from avplug.samplers.subsets import sample_distinct, sample_windowed
from avplug.samplers.synthetic import synthetic_titles

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


__all__ = [
    "GenreBalancedDraw",
    "GroupSampler",
    "HierarchicalSampler",
    "IIDSampler",
    "SceneAwareSampler",
    "SnippetSampler",
    "UniformDraw",
    "build_sampler",
    "build_title_draw",
    "load_titles_for",
    "rank_batches",
    "sample_distinct",
    "sample_windowed",
    "sampler_stats",
    "synthetic_titles",
]
