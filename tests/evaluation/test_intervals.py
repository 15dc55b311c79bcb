"""The title bootstrap and its intervals: multiplicities, pair weights, the t, proportion and KL
intervals, the report format and the sample-size warning."""
import logging

import numpy as np
import pytest
from scipy import stats

from avplug.evaluation.intervals import (
    bootstrap_weights,
    format_estimate,
    jackknife_weights,
    kl_interval,
    pair_weights,
    percentile_interval,
    proportion_interval,
    standard_error,
    t_interval,
    title_index,
    warn_if_too_few,
)


def test_bootstrap_weights_draw_titles_with_replacement():
    w = bootstrap_weights(7, 4000, seed=3)
    assert w.shape == (4000, 7) and (w.sum(1) == 7).all() and (w == np.round(w)).all()
    # Multinomial(7, 1/7 each): mean 1, variance 6/7 per title, and about (6/7)^7 = 34% of draws leave a title out.
    assert np.allclose(w.mean(0), 1, atol=0.05) and np.allclose(w.var(0), 6 / 7, atol=0.08)
    assert (w == 0).mean() == pytest.approx((6 / 7) ** 7, abs=0.02)
    assert np.array_equal(w, bootstrap_weights(7, 4000, seed=3)) and not np.array_equal(w, bootstrap_weights(7, 4000, seed=4))


def test_pair_weights_within_and_across_titles():
    w = np.array([[2.0, 0.0, 1.0], [1.0, 3.0, 0.0]])
    got = pair_weights(w, np.array([0, 1, 0, 2]), np.array([0, 1, 2, 1]))
    assert got.tolist() == [[2, 0, 2, 0], [1, 3, 0, 0]]  # inside a title c_t; across c_t * c_s
    assert (jackknife_weights(3) == 1 - np.eye(3)).all()


def test_title_index_sorts_names():
    labels, count = title_index(["b", "a", "b", 3])
    assert count == 3 and labels.tolist() == [2, 1, 2, 0]


def test_standard_error_and_percentile_skip_nan():
    x = np.r_[np.arange(101.0), np.nan]
    assert standard_error(x) == pytest.approx(np.std(np.arange(101.0), ddof=1))
    assert percentile_interval(x) == pytest.approx((2.5, 97.5))
    assert standard_error(np.array([1.0, np.nan])) is None and percentile_interval(np.array([np.nan])) == (None, None)


def test_t_interval_uses_the_title_count():
    lo, hi = t_interval(1.0, 0.1, 5)
    assert hi - 1.0 == pytest.approx(stats.t.ppf(0.975, 4) * 0.1) and lo == pytest.approx(2.0 - hi)
    assert (t_interval(1.0, 0.1, 50)[1] - 1.0) < (hi - 1.0)  # more titles, narrower
    assert t_interval(1.0, 0.1, 1) == (None, None) and t_interval(1.0, None, 5) == (None, None)


def test_proportion_interval_does_not_collapse_without_hits():
    lo, hi = proportion_interval(0.0, 0.0, 4096, 100)
    assert lo == 0.0 and 1 / 4096 < hi < 0.002  # covers chance 1/N; about 3.7 / N
    # With a design effect of 4 (se twice the binomial one) the interval widens about twofold.
    p, n = 0.3, 1000
    binomial = np.sqrt(p * (1 - p) / n)
    narrow, wide = proportion_interval(p, binomial, n, 200), proportion_interval(p, 2 * binomial, n, 200)
    assert narrow[0] < p < narrow[1] and (wide[1] - wide[0]) == pytest.approx(2 * (narrow[1] - narrow[0]), rel=0.1)
    assert (narrow[1] - narrow[0]) == pytest.approx(2 * 1.96 * binomial, rel=0.05)
    assert proportion_interval(0.3, 0.01, 1000, 1) == (None, None)


def test_kl_interval_spans_the_estimate_and_its_jackknife_correction():
    rng = np.random.default_rng(0)
    boot = rng.normal(0.05, 0.01, 500)
    # Delete-one replicates 0.004 above the estimate over 9 titles: bias estimate 8 * 0.004.
    se, bias, lo, hi = kl_interval(0.05, boot, np.full(9, 0.054), 9)
    half = stats.t.ppf(0.975, 8) * se
    assert bias == pytest.approx(0.032)
    assert lo == pytest.approx(0.05 - 0.032 - half) and hi == pytest.approx(0.05 + half)
    # A jackknife with an undefined replicate (a title whose removal empties S!=): plain t interval.
    se2, bias2, lo2, hi2 = kl_interval(0.05, boot, np.r_[np.full(8, 0.054), np.nan], 9)
    assert bias2 is None and (lo2, hi2) == pytest.approx((0.05 - half, 0.05 + half))
    # Two titles: the only replicate holding pairs across titles is the original, so no interval.
    assert kl_interval(0.05, boot, np.full(2, 0.05), 2) == (None, None, None, None)


def test_format_estimate():
    assert format_estimate(0.0012, -0.031, 0.0449) == "0.00 [-0.03, 0.04]"
    assert format_estimate(-0.05, -0.12, 0.03, nonnegative=True) == "0.00 [-0.12, 0.03]"
    assert format_estimate(-0.05, -0.12, 0.03) == "-0.05 [-0.12, 0.03]"
    assert format_estimate(-0.0001, -0.0002, 0.1, digits=3) == "0.000 [0.000, 0.100]"  # no "-0.000"
    assert format_estimate(0.4, None, None) == "0.40 [no interval]"
    assert format_estimate(None) == "n/a" and format_estimate(float("nan"), 0, 1) == "n/a"


def test_warn_if_too_few_names_the_needed_counts(caplog):
    with caplog.at_level(logging.WARNING):
        assert warn_if_too_few("thing", num_titles=2, num_snippets=512, min_titles=10, min_snippets=500, reason="why")
        assert not warn_if_too_few("thing", num_titles=10, num_snippets=500, min_titles=10, min_snippets=500, reason="why")
    assert len(caplog.records) == 1
    assert "thing on 2 held-out titles and 512 snippets" in caplog.text and "need at least 10 titles and 500 snippets (why)" in caplog.text
