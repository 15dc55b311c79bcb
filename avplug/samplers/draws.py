"""Title-draw strategies: which units (titles, or a plugin's own units such as shows) a batch uses.

A group sampler asks its strategy for ``draw(rng, count)``: ``count`` *distinct* unit positions
(``0 .. len(units) - 1``), drawn one after another without replacement.  Distinct units per global
batch mean that no snippet can appear twice in a batch, so ranks are disjoint by construction; with
``N`` units and ``G = B / k`` groups per batch, ``G << N`` in practice and each draw is the paper's
``n ~ U(1, N)`` conditioned on not repeating a title of the same batch.

- :class:`UniformDraw`: every unit equally likely (the paper's hierarchical policy).
- :class:`GenreBalancedDraw` (``SAMPLER.GENRE_BALANCED True``): a genre uniformly among the genres
  present, then a unit uniformly within it; unit ``n`` has probability ``1 / (G_genres * N_genre(n))``.
  An empty genre string is a genre of its own ("unknown").  Used for the paper's Table 4 scenarios.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np


class UniformDraw:
    """Each unit with probability ``1 / N``."""

    def __init__(self, num_units: int) -> None:
        if num_units < 1:
            raise ValueError("a title draw needs at least one eligible title")
        self.num_units = num_units
        self.probabilities = np.full(num_units, 1.0 / num_units)

    def draw(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """``count`` distinct unit positions, in draw order."""
        return rng.choice(self.num_units, size=count, replace=False)

    def describe(self, kind: str = "title") -> str:
        return f"uniform over {self.num_units} {kind}s"


class GenreBalancedDraw:
    """A genre uniformly, then a unit uniformly within that genre (successive draws, no repeats)."""

    def __init__(self, genres: Sequence[str]) -> None:
        if not len(genres):
            raise ValueError("a title draw needs at least one eligible title")
        self.counts = Counter(genres)
        weight = {g: 1.0 / (len(self.counts) * c) for g, c in self.counts.items()}
        self.num_units = len(genres)
        self.probabilities = np.array([weight[g] for g in genres])
        self.probabilities /= self.probabilities.sum()

    def draw(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """``count`` distinct units, as successive weighted draws among the units not yet drawn.

        Exponential keys ``E_n / p_n``, smallest first (Efraimidis and Spirakis, 2006): exactly the
        law of drawing with probability ``p`` again and again, removing each unit drawn.
        """
        keys = rng.exponential(size=self.num_units) / self.probabilities
        chosen = np.argpartition(keys, count - 1)[:count] if count < self.num_units else np.arange(self.num_units)
        return chosen[np.argsort(keys[chosen], kind="stable")]

    def describe(self, kind: str = "title") -> str:
        parts = ", ".join(f"{g or 'unknown'}: {c}" for g, c in sorted(self.counts.items()))
        return f"{kind}s genre-balanced over {len(self.counts)} genres ({parts})"


def build_title_draw(cfg, genres: Sequence[str]):
    """The strategy ``cfg.SAMPLER.GENRE_BALANCED`` asks for, over units with these ``genres``."""
    if cfg.SAMPLER.GENRE_BALANCED:
        return GenreBalancedDraw(genres)
    return UniformDraw(len(genres))
