"""The KL estimators at held-out sample sizes and the intervals of the four measures, against the
analytic title-clustered Gaussian cases of avplug.evaluation.synthetic."""
import logging
import math

import numpy as np
import pytest

from avplug.evaluation.discrepancy import (
    MEASURE_KEYS,
    MIN_SNIPPETS,
    MIN_TITLES,
    TitleScores,
    discrepancy_intervals,
    measure_replicates,
    measures_from_scores,
)
from avplug.evaluation.kl import (
    bin_index,
    histogram_bins,
    histogram_edges,
    histogram_kl,
    kl_divergence,
    kl_from_counts,
)
from avplug.evaluation.synthetic import CASES, gaussian_kl

EQUAL, PAPER, UNEVEN = CASES["equal"], CASES["paper"], CASES["uneven"]


@pytest.mark.parametrize("ratio,shift", [(1.0, 0.5), (1.0, 1.0), (1.5, 1.0), (3.0, 0.5), (3.0, 2.0)])
def test_histogram_matches_analytic_gaussians_with_many_samples(ratio, shift):
    rng = np.random.default_rng(int(10 * ratio + shift))
    truth = gaussian_kl(0.0, 1.0, shift * ratio, ratio)
    estimate = histogram_kl(rng.normal(0, 1, 100_000), rng.normal(shift * ratio, ratio, 100_000))
    assert estimate == pytest.approx(truth, rel=0.05)


def test_histogram_bias_for_identical_distributions_is_the_documented_one():
    """(b - 1) / 2 * (1 / n + 1 / m) for b bins: the sampling noise of the bin frequencies."""
    n = m = 500
    b = histogram_bins(m)
    estimates = [histogram_kl(*np.random.default_rng(seed).normal(size=(2, n))) for seed in range(40)]
    assert min(estimates) >= 0  # a plug-in divergence is never negative
    assert np.mean(estimates) == pytest.approx((b - 1) / 2 * (1 / n + 1 / m), rel=0.2)


def test_small_sample_bias_of_both_estimators_on_the_paper_case():
    """The module docstring's claim: with a few hundred S+ scores the k-NN estimate of KL(S- || S+)
    falls well short of the truth, the histogram's much less."""
    truth = PAPER.truth()["KL(S-||S+)"]
    knn, hist = [], []
    for seed in range(12):
        s = PAPER.draw(seed, titles=10, snippets_per_title=30)  # 300 scores of S+, 4350 of S-
        knn.append(kl_divergence(s["S-"].values, s["S+"].values))
        hist.append(histogram_kl(s["S-"].values, s["S+"].values))
    knn_bias, hist_bias = np.mean(knn) / truth - 1, np.mean(hist) / truth - 1
    assert knn_bias < -0.04, knn_bias
    assert abs(hist_bias) < abs(knn_bias) / 2, (hist_bias, knn_bias)


def knn_loop_reference(p, q, wp, wq, k):
    """The weighted k-NN estimate by brute force: a sample of weight w counts as w copies, and the
    copies of one sample are not each other's neighbours."""
    keep_p, keep_q = wp > 0, wq > 0
    p, wp, q, wq = p[keep_p], wp[keep_p], q[keep_q], wq[keep_q]
    n, m = wp.sum(), wq.sum()

    def kth(x, ref, w, skip):
        order = np.argsort(np.abs(ref - x), kind="stable")
        total = 0.0
        for j in order:
            if j == skip:
                continue
            total += w[j]
            if total >= k:
                return abs(ref[j] - x)
        raise AssertionError("too few")

    terms = [wp[i] * (math.log(kth(p[i], q, wq, -1)) - math.log(kth(p[i], p, wp, i)) + math.log(m / (n - wp[i])))
             for i in range(p.size)]
    return sum(terms) / n


def test_weighted_knn_matches_a_loop_reference():
    rng = np.random.default_rng(0)
    p, q = rng.normal(size=40), rng.normal(0.5, 1.3, size=35)
    wp, wq = rng.integers(0, 4, 40).astype(float), rng.integers(0, 4, 35).astype(float)
    for k in (1, 3, 10):
        got = kl_divergence(p, q, k=k, p_weights=wp, q_weights=wq)
        assert got == pytest.approx(knn_loop_reference(p, q, wp, wq, k), rel=1e-10)
    # Unit weights are the unweighted estimator.
    assert kl_divergence(p, q, p_weights=np.ones(40), q_weights=np.ones(35)) == pytest.approx(kl_divergence(p, q))
    with pytest.raises(ValueError, match=">= 1"):
        kl_divergence(p, q, p_weights=np.full(40, 0.5))


def test_weighted_histogram_counts_copies():
    rng = np.random.default_rng(1)
    p, q = rng.normal(size=300), rng.normal(0.3, 1.2, size=200)
    wp, wq = rng.integers(0, 3, 300).astype(float), rng.integers(0, 3, 200).astype(float)
    # P's weights are copies of P's samples (the bins come from Q's samples, unweighted).
    assert histogram_kl(p, q, p_weights=wp) == pytest.approx(histogram_kl(np.repeat(p, wp.astype(int)), q))
    edges = histogram_edges(q)
    counts = [np.bincount(bin_index(np.repeat(x, w.astype(int)), edges), minlength=edges.size + 1) for x, w in ((p, wp), (q, wq))]
    assert histogram_kl(p, q, p_weights=wp, q_weights=wq) == pytest.approx(float(kl_from_counts(*counts)))
    # Q's pseudo-count keeps a bin that P fills and Q does not finite.
    kl = kl_from_counts(np.array([[3.0, 1.0]]), np.array([[4.0, 0.0]]))
    assert np.isfinite(kl).all() and kl[0] > 0


def coverage(case, *, sets, titles, per_title, replicates=100, relabel_snippets=False):
    """How often each measure's interval covers the analytic value over seeded held-out sets."""
    truth = case.truth()
    hits = dict.fromkeys(MEASURE_KEYS, 0)
    for seed in range(sets):
        scores = case.draw(seed, titles=titles, snippets_per_title=per_title)
        clusters = titles
        if relabel_snippets:  # what an interval that resamples snippets instead of titles would see
            snippet = np.arange(titles * per_title)
            repeat = {"S+": 1, "S-": min(16, per_title - 1), "S!=": 16}
            scores = {k: TitleScores(v.values, np.repeat(snippet, repeat[k]), np.repeat(snippet, repeat[k])) for k, v in scores.items()}
            clusters = snippet.size
        result = discrepancy_intervals(scores, clusters, replicates=replicates, seed=seed)
        for name in MEASURE_KEYS:
            hits[name] += result[f"{name}_ci_low"] <= truth[name] <= result[f"{name}_ci_high"]
    return {name: count / sets for name, count in hits.items()}


@pytest.mark.parametrize("case", [PAPER, UNEVEN], ids=lambda c: c.name)
def test_intervals_cover_the_analytic_measures_of_title_clustered_scores(case):
    covered = coverage(case, sets=40, titles=10, per_title=20)
    assert min(covered.values()) >= 0.85, covered


def test_resampling_snippets_instead_of_titles_would_fail_that_test():
    """Titles unequal in correspondence: an interval over snippets is too narrow."""
    covered = coverage(UNEVEN, sets=40, titles=10, per_title=20, relabel_snippets=True)
    assert min(covered.values()) < 0.85, covered


def test_equal_distributions_give_intervals_containing_zero():
    covered = coverage(EQUAL, sets=40, titles=10, per_title=20)
    assert min(covered.values()) >= 0.95, covered


def test_measures_with_intervals_keys_and_determinism(caplog):
    scores = PAPER.draw(0, titles=12, snippets_per_title=50)
    with caplog.at_level(logging.WARNING, logger="avplug.evaluation.intervals"):
        a = discrepancy_intervals(scores, 12, replicates=200, seed=3)
    assert not caplog.records  # 12 titles and 600 snippets are enough
    assert a == discrepancy_intervals(scores, 12, replicates=200, seed=3)
    point = measures_from_scores(scores)
    for name in MEASURE_KEYS:
        assert a[name] == pytest.approx(point[name])
        assert a[f"{name}_ci_low"] < a[name] < a[f"{name}_ci_high"] and a[f"{name}_se"] > 0
        assert a[f"{name}_chance"] == 0.0 and a[f"{name}_above_zero"] is True
        assert isinstance(a[f"{name}_bias"], float)
    assert a["num_S+"] == 600 and a["num_S-"] == a["num_S!="] == 9600 and a["kl_estimator"] == "histogram"
    assert a["gap"] == pytest.approx(a["KL(S!=||S+)"] - a["KL(S-||S+)"])


def test_too_few_titles_warns_with_the_needed_counts(caplog):
    scores = EQUAL.draw(0, titles=3, snippets_per_title=20)
    with caplog.at_level(logging.WARNING, logger="avplug.evaluation.intervals"):
        result = discrepancy_intervals(scores, 3, replicates=50)
    assert f"need at least {MIN_TITLES} titles and {MIN_SNIPPETS} snippets" in caplog.text
    assert "on 3 held-out titles and 60 snippets" in caplog.text
    assert all(result[f"{name}_above_zero"] is False for name in MEASURE_KEYS)


def test_knn_estimator_gives_intervals_too():
    scores = PAPER.draw(1, titles=6, snippets_per_title=12)
    reps = measure_replicates(scores, 6, estimator="knn", replicates=8, seed=0)
    assert reps.jackknife["KL(S-||S+)"].shape == (6,) and np.isfinite(reps.bootstrap["KL(S-||S+)"]).all()
    result = discrepancy_intervals(scores, 6, estimator="knn", replicates=8)
    assert result["kl_estimator"] == "knn"
    assert all(result[f"{n}_ci_low"] < result[f"{n}_ci_high"] for n in MEASURE_KEYS)
    with pytest.raises(ValueError, match="unknown KL estimator"):
        discrepancy_intervals(scores, 6, estimator="kde")
