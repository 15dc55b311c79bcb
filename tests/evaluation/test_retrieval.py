"""Cross-modal retrieval on held-out snippets: a loop reference for ranks, ties and the within-title
test; a planted correspondence; random embeddings at chance inside their intervals; intervals that
resample titles, not snippets."""
import json
import logging
import time

import numpy as np
import pytest
import torch

from avplug.evaluation.retrieval import (
    DIRECTIONS,
    FIGURES,
    MIN_TITLES,
    _weighted_medians,
    retrieval_measures,
    retrieval_outcomes,
)


def loop_reference(scores, titles):
    """Per-snippet outcomes by brute force, ties counted half (v2a on rows, a2v on columns)."""
    n = len(titles)
    out = {}
    for direction, s in (("v2a", scores), ("a2v", scores.T)):
        rank, hit1, hit5, within = [], [], [], []
        for i in range(n):
            others = [j for j in range(n) if j != i]
            above = sum(s[i, j] > s[i, i] for j in others)
            equal = sum(s[i, j] == s[i, i] for j in others)
            rank.append(1 + above + equal / 2)
            # Average over every order of the tied ones: the own pair is equally likely at each tied place.
            places = [1 + above + t for t in range(equal + 1)]
            hit1.append(np.mean([p <= 1 for p in places]))
            hit5.append(np.mean([p <= 5 for p in places]))
            same = [j for j in others if titles[j] == titles[i]]
            within.append(np.mean([(s[i, i] > s[i, j]) + 0.5 * (s[i, i] == s[i, j]) for j in same]) if same else np.nan)
        out.update({f"{direction}_rank": rank, f"{direction}_hit@1": hit1, f"{direction}_hit@5": hit5,
                    f"{direction}_within_title": within})
    return {k: np.asarray(v, dtype=float) for k, v in out.items()}


def test_outcomes_match_a_loop_reference_with_ties():
    rng = np.random.default_rng(0)
    # Small integer embeddings: many exactly tied scores.
    z_video = rng.integers(-1, 2, size=(40, 3)).astype(np.float64)
    z_audio = (z_video + rng.integers(-1, 2, size=(40, 3))).astype(np.float64)
    titles = [f"t{i % 7}" for i in range(40)] + []
    titles[-1] = "alone"  # a title with one snippet: no within-title outcome
    got = retrieval_outcomes(z_video, z_audio, titles)
    want = loop_reference(z_video @ z_audio.T, titles)
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], err_msg=key)
    assert np.isnan(got["v2a_within_title"][-1]) and np.isfinite(got["v2a_within_title"][:-1]).all()
    ties = sum((np.delete(row, i) == row[i]).any() for i, row in enumerate(z_video @ z_audio.T))
    assert ties > 10  # the case exercises the tie rule


def test_collapsed_embedding_sits_exactly_at_chance():
    z = torch.zeros(50, 8)  # every score equal
    m = retrieval_measures(z, z, [i // 10 for i in range(50)], replicates=50)
    for d in DIRECTIONS:
        assert m[f"{d}_R@1"] == pytest.approx(1 / 50) and m[f"{d}_R@5"] == pytest.approx(5 / 50)
        assert m[f"{d}_median_rank"] == pytest.approx(25.5) and m[f"{d}_within_title"] == pytest.approx(0.5)
        for figure in FIGURES:
            assert m[f"{d}_{figure}"] == pytest.approx(m[f"{d}_{figure}_chance"])


def planted(n_titles, per_title, noise, *, dim=32, seed=0):
    rng = np.random.default_rng(seed)
    z_video = rng.normal(size=(n_titles * per_title, dim))
    z_audio = z_video + noise * rng.normal(size=z_video.shape)
    return z_video, z_audio, np.repeat([f"title{t}" for t in range(n_titles)], per_title)


def test_planted_correspondence_gives_high_recall():
    z_video, z_audio, titles = planted(30, 10, noise=0.3)
    m = retrieval_measures(z_video, z_audio, titles, seed=1)
    assert m["num_titles"] == 30 and m["num_snippets"] == 300 and m["num_within_title_snippets"] == 300
    for d in DIRECTIONS:
        assert m[f"{d}_R@1"] > 0.95 and m[f"{d}_R@1_ci_low"] > 0.9 > 100 * m[f"{d}_R@1_chance"] * 0.3
        assert m[f"{d}_R@5"] >= m[f"{d}_R@1"]
        assert m[f"{d}_median_rank"] == 1.0 and m[f"{d}_median_rank_chance"] == 150.5
        assert m[f"{d}_within_title"] > 0.99 and m[f"{d}_within_title_ci_low"] > 0.95
    # Weaker correspondence: lower, and still far above chance.
    weak = retrieval_measures(*planted(30, 10, noise=2.0), seed=1)
    assert 0.05 < weak["v2a_R@1"] < m["v2a_R@1"] and weak["v2a_R@1_ci_low"] > 5 * weak["v2a_R@1_chance"]
    assert weak["v2a_R@1_ci_low"] <= weak["v2a_R@1"] <= weak["v2a_R@1_ci_high"]
    assert 1 < weak["v2a_median_rank"] < 150.5


def test_random_embeddings_are_at_chance_within_their_intervals():
    """Independent video and audio: every figure's interval covers its chance level in most seeds."""
    covered = {figure: 0 for figure in FIGURES}
    seeds = 40
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        z_video, z_audio = rng.normal(size=(200, 16)), rng.normal(size=(200, 16))
        m = retrieval_measures(z_video, z_audio, np.repeat(np.arange(20), 10), replicates=300, seed=seed)
        for figure in FIGURES:
            key = f"v2a_{figure}"
            covered[figure] += m[f"{key}_ci_low"] <= m[f"{key}_chance"] <= m[f"{key}_ci_high"]
    assert all(count >= 0.85 * seeds for count in covered.values()), covered


def test_intervals_resample_titles_not_snippets():
    """Titles that differ in difficulty: half of them retrieve perfectly, half at random.  The title
    bootstrap's standard error sees the 20 titles; a snippet-level error would be much smaller."""
    rng = np.random.default_rng(3)
    z_video, z_audio, titles = planted(20, 20, noise=0.05, dim=64)
    hard = np.isin(titles, [f"title{t}" for t in range(0, 20, 2)])
    z_audio[hard] = rng.normal(size=(int(hard.sum()), 64))
    m = retrieval_measures(z_video, z_audio, titles, seed=0)
    p = m["v2a_R@1"]
    assert 0.4 < p < 0.6
    snippet_se = np.sqrt(p * (1 - p) / 400)
    title_se = np.sqrt(0.25 / 20)  # per-title R@1 is 0 or 1
    assert m["v2a_R@1_se"] > 3 * snippet_se
    assert m["v2a_R@1_se"] == pytest.approx(title_se, rel=0.25)
    assert m["v2a_R@1_ci_high"] - m["v2a_R@1_ci_low"] > 0.3


def test_weighted_median_is_the_median_of_the_expanded_sample():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 30, 57).astype(float)  # with repeats
    labels = rng.integers(0, 9, 57)
    weights = rng.integers(0, 4, size=(25, 9)).astype(float)
    weights[weights.sum(1) == 0, 0] = 1
    want = [np.median(np.repeat(values, w[labels].astype(int))) for w in weights]
    np.testing.assert_allclose(_weighted_medians(values, labels, weights, chunk=7), want)


def test_deterministic_json_ready_and_warns_for_too_few_titles(caplog):
    z_video, z_audio, titles = planted(3, 8, noise=1.0)
    with caplog.at_level(logging.WARNING, logger="avplug.evaluation.intervals"):
        a = retrieval_measures(z_video, z_audio, titles, seed=5)
    assert f"need at least {MIN_TITLES} titles" in caplog.text and "on 3 held-out titles and 24 snippets" in caplog.text
    assert a == retrieval_measures(z_video, z_audio, list(titles), seed=5)
    assert a != retrieval_measures(z_video, z_audio, titles, seed=6)
    json.dumps(a, allow_nan=False)
    for d in DIRECTIONS:
        for figure in FIGURES:
            assert {f"{d}_{figure}{s}" for s in ("", "_se", "_ci_low", "_ci_high", "_chance")} <= set(a)
    one = retrieval_measures(z_video[:8], z_audio[:8], titles[:8])
    assert one["v2a_R@1_ci_low"] is None and one["v2a_R@1_se"] is None and one["v2a_R@1"] is not None
    singles = retrieval_measures(z_video[:6], z_audio[:6], [f"s{i}" for i in range(6)])
    assert singles["v2a_within_title"] is None and singles["num_within_title_snippets"] == 0


def test_thousands_of_snippets_take_well_under_a_second():
    rng = np.random.default_rng(0)
    z_video = rng.normal(size=(2048, 64)).astype(np.float32)
    z_audio = z_video + rng.normal(size=z_video.shape).astype(np.float32)
    start = time.perf_counter()
    m = retrieval_measures(z_video, z_audio, np.arange(2048) // 16, replicates=1000)
    elapsed = time.perf_counter() - start
    assert m["v2a_R@1"] > 0.5
    assert elapsed < 1.5, elapsed  # 0.07 s on a shared 2-core machine
