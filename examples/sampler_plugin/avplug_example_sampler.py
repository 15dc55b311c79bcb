"""An avplug sampler plugin: groups drawn across the episodes of one TV show ("ShowLevelSampler").

The paper notes (section 3, footnote 7) that the episodes of a TV show share their content-exclusive
artifacts, "a very long movie created by stitching different episodes together".  This policy
makes that the unit of the hierarchical draw: a show uniformly (or genre-balanced with
``SAMPLER.GENRE_BALANCED``), then k snippets of it, so the hard negatives of a group are spread
over several episodes instead of one.

Load it with ``--plugin avplug_example_sampler`` or ``PLUGINS: [avplug_example_sampler]`` (the
folder must be on ``PYTHONPATH``, or the module installed with an ``avplug.plugins`` entry point),
then select it with ``SAMPLER.NAME: ShowLevelSampler``.  Its own keys live under
``SAMPLER.SHOW_LEVEL`` (added by the config hook below, so YAML files may set them).
"""
from __future__ import annotations

import numpy as np
from fvcore.common.config import CfgNode as CN

import registry
from avplug.samplers import GroupSampler, sample_distinct


@registry.register_config_hook
def add_show_level_keys(cfg: CN) -> None:
    """The plugin's keys, with defaults; runs on the defaults before any YAML is merged."""
    cfg.SAMPLER.SHOW_LEVEL = CN()
    # "episodes": one snippet from each of k different episodes of the show;
    # "pooled": k distinct snippets drawn uniformly from all the show's episodes together.
    cfg.SAMPLER.SHOW_LEVEL.MODE = "episodes"
    # Treat every movie (empty show_id) as a show of one episode; False draws TV shows only.
    cfg.SAMPLER.SHOW_LEVEL.INCLUDE_MOVIES = False


@registry.SAMPLERS.register()
class ShowLevelSampler(GroupSampler):
    """A show, then k snippets across its episodes (``SAMPLER.SHOW_LEVEL.MODE``).

    Units are shows; a show's capacity is its number of episodes ("episodes" mode) or its number
    of snippets ("pooled"), so ``SAMPLER.SHORT_TITLES`` decides what happens to shows with too few
    episodes.  ``SAMPLER.WINDOW`` does not apply (groups span episodes) and must be 0.  Everything
    else (epochs, ranks, resume, ``SPREAD_GROUPS``, genre balance) comes from ``GroupSampler``.
    """

    def prepare(self) -> None:
        opts = self.cfg.SAMPLER.SHOW_LEVEL
        if opts.MODE not in ("episodes", "pooled"):
            raise ValueError(f'ShowLevelSampler: SAMPLER.SHOW_LEVEL.MODE = {opts.MODE!r} must be "episodes" or "pooled"')
        if self.window:
            raise ValueError(f"ShowLevelSampler: SAMPLER.WINDOW = {self.window} does not apply across episodes; set it to 0")
        self.mode = opts.MODE
        shows: dict[str, list[int]] = {}
        for pos, title in enumerate(self.titles):
            if title.num_snippets == 0 or not (title.show_id or opts.INCLUDE_MOVIES):
                continue
            shows.setdefault(title.show_id or f"movie:{title.title_id}", []).append(pos)
        if not shows:
            raise ValueError("ShowLevelSampler: the catalog has no TV show episodes (set SAMPLER.SHOW_LEVEL.INCLUDE_MOVIES True)")
        self.show_names = list(shows)
        self.episodes = np.array([p for eps in shows.values() for p in eps], dtype=np.int64)
        self.episode_ptr = np.concatenate([[0], np.cumsum([len(eps) for eps in shows.values()])])
        self.num_episodes = np.diff(self.episode_ptr)
        # "pooled": a show's snippets numbered episode after episode.
        self._snippet_end = np.cumsum(self.num_snippets[self.episodes])
        before = np.concatenate([[0], self._snippet_end])
        self._show_base = before[self.episode_ptr[:-1]]
        self.show_snippets = before[self.episode_ptr[1:]] - self._show_base

    def unit_capacity(self) -> np.ndarray:
        return self.num_episodes if self.mode == "episodes" else self.show_snippets

    def unit_genres(self) -> list[str]:
        return [self.titles[self.episodes[start]].genre for start in self.episode_ptr[:-1]]

    def unit_snippets(self) -> np.ndarray:
        return self.show_snippets

    def unit_names(self) -> list[str]:
        return self.show_names

    def unit_kind(self) -> str:
        return "show"

    def capacity_meaning(self) -> str:
        return "episodes" if self.mode == "episodes" else "snippets of the show"

    def describe(self) -> str:
        if self.mode == "episodes":
            how = f"one snippet in each of k = {self.k} episodes of a show"
        else:
            how = f"k = {self.k} distinct snippets pooled over a show's episodes"
        return f"{how}; {self.layout_text()}"

    def sample_groups(self, rng, units, sizes):
        if self.mode == "episodes":
            picked = sample_distinct(rng, self.num_episodes[units], sizes) + np.repeat(self.episode_ptr[units], sizes)
            titles = self.episodes[picked]
            return titles, rng.integers(0, self.num_snippets[titles])
        flat = sample_distinct(rng, self.show_snippets[units], sizes) + np.repeat(self._show_base[units], sizes)
        episode = np.searchsorted(self._snippet_end, flat, side="right")
        titles = self.episodes[episode]
        return titles, flat - (self._snippet_end[episode] - self.num_snippets[titles])
