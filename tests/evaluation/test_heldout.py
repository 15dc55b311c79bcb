"""heldout_measures, the one entry point: its flat key scheme, strict JSON, determinism, and the
retrieval and discrepancy figures of embeddings with known structure."""
import json

import numpy as np
import pytest
import torch

from avplug.config import ConfigError, load_config
from avplug.evaluation.discrepancy import MEASURE_KEYS, discrepancy_measures, heldout_measures
from avplug.evaluation.retrieval import DIRECTIONS, FIGURES


def structured(title_scale, *, titles=12, per_title=30, dim=16, seed=0):
    """Matched pairs share a snippet vector; every snippet of a title shares a title offset."""
    rng = np.random.default_rng(seed)
    offsets = np.repeat(rng.normal(size=(titles, dim)) * title_scale, per_title, axis=0)
    shared = rng.normal(size=(titles * per_title, dim))
    z_video = offsets + shared + 0.5 * rng.normal(size=shared.shape)
    z_audio = offsets + shared + 0.5 * rng.normal(size=shared.shape)
    return z_video, z_audio, [f"title{t:02d}" for t in np.repeat(np.arange(titles), per_title)]


def test_key_scheme_is_flat_strict_json_and_deterministic():
    z_video, z_audio, ids = structured(1.0)
    m = heldout_measures(torch.from_numpy(z_video).float(), torch.from_numpy(z_audio).float(), ids, seed=1, replicates=200)
    names = [f"{d}_{f}" for d in DIRECTIONS for f in FIGURES] + list(MEASURE_KEYS)
    for name in names:
        for suffix in ("", "_se", "_ci_low", "_ci_high", "_chance"):
            assert isinstance(m[name + suffix], float), name + suffix
    for name in MEASURE_KEYS:
        assert isinstance(m[f"{name}_above_zero"], bool) and isinstance(m[f"{name}_bias"], float)
    assert (m["num_titles"], m["num_snippets"], m["num_S+"]) == (12, 360, 360)
    assert m["bootstrap_replicates"] == 200 and m["confidence"] == 0.95 and m["kl_estimator"] == "histogram"
    assert all(isinstance(v, (int, float, bool, str)) for v in m.values())
    assert json.loads(json.dumps(m, allow_nan=False)) == m
    again = heldout_measures(z_video, z_audio, ids, seed=1, replicates=200)  # float64 arrays this time
    assert again.keys() == m.keys() and again["kl_estimator"] == m["kl_estimator"]
    assert {k: v for k, v in again.items() if k != "kl_estimator"} == pytest.approx(
        {k: v for k, v in m.items() if k != "kl_estimator"}, rel=1e-4, abs=1e-6)
    # The S- / S!= pair draw and the title resamples both follow the seed.
    other = heldout_measures(z_video, z_audio, ids, seed=2, replicates=200)
    assert other["KL(S-||S!=)"] != m["KL(S-||S!=)"] and other["v2a_R@1_se"] != m["v2a_R@1_se"]
    assert other["v2a_R@1"] == m["v2a_R@1"]  # retrieval itself draws nothing


def test_title_structure_shows_in_every_family_of_figures():
    m = heldout_measures(*structured(1.0), seed=0, replicates=300)
    for d in DIRECTIONS:  # the matched pair stands out, also against same-title snippets
        assert m[f"{d}_R@1_ci_low"] > 20 * m[f"{d}_R@1_chance"]
        assert m[f"{d}_median_rank_ci_high"] < m[f"{d}_median_rank_chance"] / 10
        assert m[f"{d}_within_title_ci_low"] > 0.8
    # S- sits between S!= and S+: resolved from 0, with KL(S!=||S+) above KL(S-||S+).
    assert m["KL(S-||S!=)_above_zero"] and m["gap_above_zero"] and m["KL(S-||S+)_above_zero"]
    assert m["KL(S!=||S+)"] > m["KL(S-||S+)"]
    # Without title offsets the two negatives are one distribution: the interval holds 0.
    flat = heldout_measures(*structured(0.0), seed=0, replicates=300)
    assert flat["KL(S-||S!=)_ci_low"] <= 0 <= flat["KL(S-||S!=)_ci_high"] and not flat["KL(S-||S!=)_above_zero"]
    assert flat["gap_ci_low"] <= 0 <= flat["gap_ci_high"]
    assert flat["v2a_within_title"] > 0.8  # own audio still beats same-title audio


def test_the_point_estimates_are_discrepancy_measures():
    z_video, z_audio, ids = structured(1.0)
    m = heldout_measures(z_video, z_audio, ids, seed=4, replicates=50, pairs_per_snippet=8)
    point = discrepancy_measures(z_video, z_audio, ids, seed=4, pairs_per_snippet=8)
    for key in (*MEASURE_KEYS, "num_S+", "num_S-", "num_S!=", "num_titles"):
        assert m[key] == pytest.approx(point[key])
    knn = heldout_measures(z_video, z_audio, ids, seed=4, replicates=5, pairs_per_snippet=8, estimator="knn")
    assert knn["kl_estimator"] == "knn" and knn["KL(S-||S+)"] == pytest.approx(
        discrepancy_measures(z_video, z_audio, ids, seed=4, pairs_per_snippet=8, estimator="knn")["KL(S-||S+)"])


def test_few_titles_get_figures_without_intervals(caplog):
    z_video, z_audio, ids = structured(1.0, titles=2, per_title=40)
    two = heldout_measures(z_video, z_audio, ids, replicates=100)
    assert two["num_titles"] == 2 and two["v2a_R@1_ci_low"] is not None  # retrieval: 3 distinct resamples, wide
    for name in MEASURE_KEYS:
        assert isinstance(two[name], float) and two[f"{name}_ci_low"] is None and two[f"{name}_above_zero"] is False
    assert "need at least 10 titles and 500 snippets" in caplog.text
    with caplog.at_level("WARNING"):
        one = heldout_measures(z_video[:40], z_audio[:40], ids[:40], replicates=100)
    assert "no discrepancy measures: num_S+ 40, num_S- 640, num_S!= 0" in caplog.text
    assert one["KL(S-||S+)"] is None and one["num_S!="] == 0 and one["v2a_R@1"] > 0.5 and one["v2a_R@1_ci_low"] is None
    assert json.loads(json.dumps(one, allow_nan=False)) == one


def test_eval_config_keys_are_validated():
    cfg = load_config("demo.yaml")
    assert cfg.EVAL.DISCREPANCY_ESTIMATOR == "histogram" and cfg.EVAL.BOOTSTRAP_REPLICATES == 1000
    assert load_config("demo.yaml", ["EVAL.DISCREPANCY_ESTIMATOR", "knn"]).EVAL.DISCREPANCY_ESTIMATOR == "knn"
    with pytest.raises(ConfigError, match="EVAL.DISCREPANCY_ESTIMATOR"):
        load_config("demo.yaml", ["EVAL.DISCREPANCY_ESTIMATOR", "kde"])
    with pytest.raises(ConfigError, match="EVAL.BOOTSTRAP_REPLICATES"):
        load_config("demo.yaml", ["EVAL.BOOTSTRAP_REPLICATES", "1"])
