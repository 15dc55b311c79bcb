"""A synthetic catalog index, to look at a sampling policy without any media (tests, inspect_sampler)."""
from __future__ import annotations

import numpy as np

from avplug.data.index import TitleRecord

# The genres of the paper's catalog (section 4.1), with a Drama/Comedy-heavy mix as in Table 4.
GENRES = ("Drama", "Comedy", "Action", "Horror", "Thriller", "Sci-Fi", "Romance")
_GENRE_WEIGHTS = np.array([0.30, 0.25, 0.13, 0.08, 0.10, 0.06, 0.08])


def synthetic_titles(n: int, seed: int = 0, *, snippet_seconds: float = 3.2) -> list[TitleRecord]:
    """``n`` titles shaped like the paper's catalog: movies, TV episodes and a few short titles.

    About half the titles are movies of 80-130 minutes, 45% are episodes of TV shows (20-60
    minutes; 3 to 12 episodes per show, the episodes of a show share its genre), and 5% are short
    clips of 1-40 snippets, so that ``SAMPLER.SHORT_TITLES`` matters.  ``M_n`` is the duration
    divided by ``snippet_seconds``.  Scenes are runs of 3 to 120 snippets (lognormal, median about
    50 s).  Deterministic in ``(n, seed)``; title ids are ``movie_00001``, ``show003_ep02``,
    ``clip_00007``.
    """
    if n < 1:
        raise ValueError(f"synthetic_titles needs n >= 1, got {n}")
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0x5EED,)))
    titles: list[TitleRecord] = []
    show = 0
    while len(titles) < n:
        kind = rng.random()
        genre = GENRES[rng.choice(len(GENRES), p=_GENRE_WEIGHTS)]
        if kind < 0.5:
            m = _snippets(rng.uniform(80, 130), snippet_seconds)
            titles.append(_title(rng, f"movie_{len(titles):05d}", m, genre, ""))
        elif kind < 0.95:
            minutes = rng.choice([22.0, 30.0, 42.0, 55.0])
            show_id = f"show{show:03d}"
            show += 1
            for ep in range(int(rng.integers(3, 13))):
                if len(titles) == n:
                    break
                m = _snippets(minutes * rng.uniform(0.9, 1.1), snippet_seconds)
                titles.append(_title(rng, f"{show_id}_ep{ep:02d}", m, genre, show_id))
        else:
            titles.append(_title(rng, f"clip_{len(titles):05d}", int(rng.integers(1, 41)), genre, ""))
    return titles


def _snippets(minutes: float, snippet_seconds: float) -> int:
    return max(1, int(minutes * 60 // snippet_seconds))


def _title(rng: np.random.Generator, title_id: str, m: int, genre: str, show_id: str) -> TitleRecord:
    lengths = np.clip(np.round(rng.lognormal(np.log(15), 0.8, size=m // 3 + 1)), 3, 120).astype(int)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    starts = starts[starts < m]
    return TitleRecord(title_id, m, genre=genre, show_id=show_id, scene_starts=tuple(int(s) for s in starts))
