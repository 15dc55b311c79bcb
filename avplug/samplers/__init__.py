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

from avplug.samplers.base import GroupSampler, SnippetSampler
from avplug.samplers.build import build_sampler
from avplug.samplers.draws import GenreBalancedDraw, UniformDraw, build_title_draw
from avplug.samplers.errors import SamplerError
from avplug.samplers.inspect import load_titles_for, rank_batches, sampler_stats
from avplug.samplers.policies import HierarchicalSampler, IIDSampler, SceneAwareSampler
from avplug.samplers.subsets import sample_distinct, sample_windowed
from avplug.samplers.synthetic import synthetic_titles

__all__ = [
    "GenreBalancedDraw",
    "GroupSampler",
    "HierarchicalSampler",
    "IIDSampler",
    "SamplerError",
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
