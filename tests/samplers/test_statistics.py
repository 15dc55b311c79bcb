"""The policies draw from the distributions they document (chi-square tests at fixed seeds)."""
from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
from scipy.stats import chisquare

from avplug.data.index import TitleRecord
from avplug.samplers import GenreBalancedDraw, sample_distinct, sample_windowed

ALPHA = 1e-3  # fixed seeds make these deterministic; the threshold only guards against a wrong law


def _catalog():
    """24 titles of 10 to 125 snippets, three unequal genres, two scenes each."""
    genres = ["Drama"] * 14 + ["Horror"] * 6 + ["Sci-Fi"] * 4
    return [TitleRecord(f"t{i:02d}", 10 + 5 * i, genre=g, scene_starts=(0, 3 + i)) for i, g in enumerate(genres)]


def _group_titles(sampler, epochs):
    """Title of every group over ``epochs`` epochs (one count per group, read off its first item)."""
    counts = Counter()
    for epoch in range(epochs):
        for index in range(len(sampler)):
            batch = sampler.global_batch(index, epoch=epoch)
            counts.update(t for t in {t for t, _ in batch})
    return counts


def test_hierarchical_draws_titles_uniformly_whatever_their_length(make_cfg, world):
    titles = _catalog()
    sampler = world(make_cfg({"SAMPLER.K": 4, "SOLVER.BATCH_SIZE": 16}), titles, 1, 11)[0]
    counts = _group_titles(sampler, epochs=12)
    observed = np.array([counts[t.title_id] for t in titles])
    assert observed.sum() == 12 * len(sampler) * 4
    assert chisquare(observed).pvalue > ALPHA
    # A length-proportional law (what i.i.d. snippets give) is clearly rejected.
    lengths = np.array([t.num_snippets for t in titles], dtype=float)
    assert chisquare(observed, lengths / lengths.sum() * observed.sum()).pvalue < ALPHA


def test_genre_balanced_draw_is_uniform_over_genres_then_titles(make_cfg, world):
    titles = _catalog()
    cfg = make_cfg({"SAMPLER.K": 2, "SOLVER.BATCH_SIZE": 4, "SAMPLER.GENRE_BALANCED": True})
    sampler = world(cfg, titles, 1, 12)[0]
    counts = _group_titles(sampler, epochs=3)
    genre_of = {t.title_id: t.genre for t in titles}
    by_genre = Counter()
    for tid, c in counts.items():
        by_genre[genre_of[tid]] += c
    assert chisquare(list(by_genre.values())).pvalue > ALPHA
    for genre in ("Drama", "Horror", "Sci-Fi"):
        within = [counts[t.title_id] for t in titles if t.genre == genre]
        assert chisquare(within).pvalue > ALPHA, genre


def test_iid_baseline_draws_snippets_uniformly_from_the_union(make_cfg, world):
    titles = _catalog()
    sampler = world(make_cfg({"SAMPLER.NAME": "IIDSampler", "SAMPLER.K": 1, "SOLVER.BATCH_SIZE": 8}), titles, 1, 13)[0]
    first, position = Counter(), Counter()
    for epoch in range(3000):  # the first item of an epoch: one draw from the union per epoch
        tid, m = sampler.global_batch(0, epoch=epoch)[0]
        first[tid] += 1
        position[min(9, m * 10 // next(t.num_snippets for t in titles if t.title_id == tid))] += 1
    lengths = np.array([t.num_snippets for t in titles], dtype=float)
    observed = np.array([first[t.title_id] for t in titles])
    assert chisquare(observed, lengths / lengths.sum() * observed.sum()).pvalue > ALPHA  # P(title) ∝ M_n
    assert chisquare([position[d] for d in range(10)]).pvalue > ALPHA  # uniform inside the title


def _subset_frequencies(out, m, k, w):
    counts = Counter(map(tuple, out.reshape(-1, k).tolist()))
    valid = [c for c in itertools.combinations(range(m), k) if c[-1] - c[0] + 1 <= (w or m)]
    assert set(counts) <= set(valid)
    return [counts[c] for c in valid]


@pytest.mark.parametrize("m, k, w", [(9, 3, 5), (12, 2, 4), (7, 3, 3), (8, 3, 0), (10, 4, 9), (6, 1, 2), (14, 3, 13)])
def test_windowed_groups_are_uniform_over_valid_configurations(m, k, w):
    rng = np.random.default_rng(m * 100 + k * 10 + w)
    groups = 40_000
    out = sample_windowed(rng, np.full(groups, m), np.full(groups, k), w)
    assert chisquare(_subset_frequencies(out, m, k, w)).pvalue > ALPHA


@pytest.mark.parametrize("n, k", [(7, 3), (13, 3), (16, 2)], ids=["floyd", "redraw", "redraw-pairs"])
def test_distinct_subsets_are_uniform(n, k):
    rng = np.random.default_rng(n + k)
    groups = 40_000
    # Mixed rows (some dense, some sparse) go through both procedures in one call.
    sizes = np.full(groups, k)
    out = sample_distinct(rng, np.concatenate([np.full(groups, n), [2, 40]]), np.concatenate([sizes, [2, 10]]))
    assert chisquare(_subset_frequencies(out[: groups * k], n, k, 0)).pvalue > ALPHA
    assert sorted(out[-12:-10]) == [0, 1] and len(set(out[-10:])) == 10


def test_sample_distinct_in_every_regime():
    """Populations from empty to far larger than the draw (the held-out pair draw's range)."""
    population = np.array([0, 1, 5, 16, 17, 100, 256, 257, 10_000])
    sizes = np.minimum(16, population)
    out = sample_distinct(np.random.default_rng(0), population, sizes)
    ends = np.cumsum(sizes)
    for pop, size, end in zip(population, sizes, ends):
        mine = out[end - size : end]
        assert len(set(mine.tolist())) == len(mine) == size
        assert ((mine >= 0) & (mine < max(pop, 1))).all()
    # Uniform: every candidate of a small population is drawn about equally often.
    counts = np.bincount(sample_distinct(np.random.default_rng(1), np.full(4000, 20), np.full(4000, 5)), minlength=20)
    assert counts.min() > 0.85 * counts.mean() and counts.max() < 1.15 * counts.mean()


def test_hierarchical_windowed_groups_are_uniform_through_the_sampler(make_cfg, world):
    titles = [TitleRecord(f"t{i}", 9) for i in range(8)]
    sampler = world(make_cfg({"SAMPLER.K": 3, "SAMPLER.WINDOW": 5, "SOLVER.BATCH_SIZE": 24}), titles, 1, 14)[0]
    out = []
    for epoch in range(1500):
        batch = sampler.global_batch(0, epoch=epoch)
        out.extend(m for _, m in batch)
    assert chisquare(_subset_frequencies(np.array(out), 9, 3, 5)).pvalue > ALPHA


def test_one_scene_picks_scenes_in_proportion_to_their_length(make_cfg, world):
    # Scenes of 2 (too short for k = 3), 4, 8 and 12 snippets.
    titles = [TitleRecord(f"t{i}", 26, scene_starts=(0, 2, 6, 14)) for i in range(8)]
    cfg = make_cfg({"SAMPLER.NAME": "SceneAwareSampler", "SAMPLER.K": 3, "SOLVER.BATCH_SIZE": 24})
    sampler = world(cfg, titles, 1, 15)[0]
    scenes = Counter()
    for epoch in range(300):
        for _title, m in sampler.global_batch(0, epoch=epoch)[::3]:
            scenes[next(i for i, (s, e) in enumerate(titles[0].scenes()) if s <= m < e)] += 1
    assert scenes[0] == 0
    observed = [scenes[1], scenes[2], scenes[3]]
    assert chisquare(observed, np.array([4, 8, 12]) / 24 * sum(observed)).pvalue > ALPHA


def test_genre_balanced_draw_is_successive_weighted_draws_without_repeats():
    # Genres A (1 title), B (2 titles), C (3 titles): unit probabilities 1/3, 1/6, 1/6, 1/9, 1/9, 1/9.
    draw = GenreBalancedDraw(["A", "B", "B", "C", "C", "C"])
    p = draw.probabilities
    assert np.allclose(p, [1 / 3, 1 / 6, 1 / 6, 1 / 9, 1 / 9, 1 / 9])
    rng = np.random.default_rng(21)
    pairs = Counter(tuple(draw.draw(rng, 2).tolist()) for _ in range(30_000))
    ordered = [(i, j) for i in range(6) for j in range(6) if i != j]
    expected = np.array([p[i] * p[j] / (1 - p[i]) for i, j in ordered])
    observed = np.array([pairs[o] for o in ordered])
    assert chisquare(observed, expected / expected.sum() * observed.sum()).pvalue > ALPHA
    assert sorted(draw.draw(rng, 6).tolist()) == list(range(6))


def _same_title_negatives(batch):
    """Per sample i of a global batch: how many of Eq. 1's 2(B - 1) negatives, (z_v^i, z_a^j) and
    (z_v^j, z_a^i) for j != i, pair snippets of i's own title."""
    titles = np.array([t for t, _ in batch])
    same = titles[:, None] == titles[None, :]
    return 2 * (same.sum(axis=1) - 1)


def test_eq1_negatives_from_the_own_title_are_2k_minus_2_with_the_hierarchical_sampler(make_cfg, world):
    k, batch_size = 4, 32
    sampler = world(make_cfg({"SAMPLER.K": k, "SOLVER.BATCH_SIZE": batch_size}), _catalog(), 1, 3)[0]
    counts = np.concatenate([_same_title_negatives(sampler.global_batch(i, epoch=e)) for e in range(4) for i in range(len(sampler))])
    assert counts.size == 4 * len(sampler) * batch_size
    assert np.all(counts == 2 * (k - 1))  # the groups of one global batch come from distinct titles


def test_eq1_negatives_from_the_own_title_are_few_with_iid_snippets(make_cfg, world):
    from avplug.samplers.synthetic import synthetic_titles

    batch_size = 32
    titles = synthetic_titles(400, seed=1)
    sampler = world(make_cfg({"SAMPLER.NAME": "IIDSampler", "SAMPLER.K": 1, "SOLVER.BATCH_SIZE": batch_size}), titles, 1, 3)[0]
    counts = np.concatenate([_same_title_negatives(sampler.global_batch(i, epoch=0)) for i in range(min(len(sampler), 3000))])
    share = np.array([t.num_snippets for t in titles], dtype=float)
    share /= share.sum()
    expected = 2 * (batch_size - 1) * (share ** 2).sum()  # snippets drawn in proportion to their title's length
    assert counts.mean() == pytest.approx(expected, rel=0.15)
    assert counts.mean() < 0.1 * 2 * (16 - 1)  # under a tenth of what k = 16 gives every sample
