"""The statistics every downstream result carries: Wilson intervals, bootstrap intervals of the mean
over test groups, paired comparisons of two encoders (McNemar per split)."""
import numpy as np
import pytest
from scipy.stats import binomtest

from avplug.evaluation.downstream_statistics import aggregate, compare_probes, results_markdown, wilson_interval


@pytest.mark.parametrize(("k", "n"), [(8, 10), (0, 10), (10, 10), (37, 216), (150, 216)])
def test_wilson_interval_matches_known_values(k, n):
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(k, n) == pytest.approx([ref.low, ref.high], abs=1e-12)


def test_wilson_interval_textbook_values():
    assert wilson_interval(8, 10) == pytest.approx([0.4902, 0.9433], abs=1e-4)  # Newcombe (1998), Table I
    assert wilson_interval(0, 10) == [0.0, pytest.approx(0.2775, abs=1e-4)]
    assert wilson_interval(10, 10) == [pytest.approx(0.7225, abs=1e-4), 1.0]
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def _result(split, hits, groups, weights="w.pth", dataset="UCF101", top5=None):
    n = len(hits)
    clips = {"path": [f"c{split}_{i}.avi" for i in range(n)], "group": list(groups), "label": [0] * n,
             "prediction": [0 if h else 1 for h in hits], "top1": [int(h) for h in hits],
             "top5": [int(h) for h in (top5 if top5 is not None else hits)]}
    return {"dataset": dataset, "protocol": "linear", "weights": weights, "split": split, "num_classes": 6, "chance": 1 / 6,
            "top1": sum(clips["top1"]) / n, "top5": sum(clips["top5"]) / n, "num_test": n,
            "top1_ci95": wilson_interval(sum(clips["top1"]), n), "top5_ci95": wilson_interval(sum(clips["top5"]), n),
            "test_clips": clips}


def test_aggregate_and_markdown():
    results = [_result(s, [True] * k + [False] * (10 - k), [f"g{s}"] * 10) for s, k in [(2, 5), (1, 7), (3, 6)]]
    summary = aggregate(results)
    assert summary["splits"] == [1, 2, 3]
    assert summary["mean"]["top1"] == pytest.approx(0.6) and summary["std"]["top1"] == pytest.approx(0.1)
    assert summary["per_split"]["2"] == {"top1": 0.5, "top5": 0.5, "top1_ci95": wilson_interval(5, 10),
                                         "top5_ci95": wilson_interval(5, 10), "num_test": 10}
    assert summary["num_test_clips"] == 30 and summary["num_test_groups"] == 3
    table = results_markdown(summary)
    assert "| 1 | 10 | 70.00 | 39.7-89.2 | 70.00 | 39.7-89.2 |" in table
    assert "| mean ± std | 30 | 60.00 ± 10.00 |" in table and "(chance 16.67%)" in table
    with pytest.raises(ValueError, match="mix several dataset"):
        aggregate(results + [dict(results[0], dataset="HMDB51", split=4)])
    with pytest.raises(ValueError, match="appears twice"):
        aggregate(results + [results[0]])


def test_mean_interval_is_the_pooled_binomial_for_independent_clips_and_wider_for_clustered_ones():
    """Three disjoint test sets of 300 clips: with every clip its own group the bootstrap interval of the
    mean is the binomial one of the 900 pooled clips; when clips come in groups of 10 that are all right or
    all wrong, the interval is about sqrt(10) times wider (there are only 90 independent outcomes)."""
    rng = np.random.default_rng(0)
    hits = rng.uniform(size=(3, 300)) < 0.6
    single = aggregate([_result(s + 1, hits[s], [f"{s}-{i}" for i in range(300)]) for s in range(3)])
    low, high = wilson_interval(int(hits.sum()), 900)
    assert single["mean"]["top1"] == pytest.approx(hits.mean())
    assert single["mean_ci95"]["top1"] == pytest.approx([low, high], abs=0.008)
    blocks = np.repeat(rng.uniform(size=(3, 30)) < 0.6, 10, axis=1)
    clustered = aggregate([_result(s + 1, blocks[s], [f"{s}-{i // 10}" for i in range(300)]) for s in range(3)])
    width = np.diff(clustered["mean_ci95"]["top1"])[0]
    assert 2.5 < width / (high - low) < 4.0


def test_compare_probes_finds_a_real_difference_and_none_in_noise():
    rng = np.random.default_rng(1)
    groups = [f"g{i // 3}" for i in range(240)]
    better = [_result(s, rng.uniform(size=240) < 0.7, groups, weights="pretrained.pth") for s in (1, 2, 3)]
    worse = [_result(s, rng.uniform(size=240) < 0.45, groups, weights="none") for s in (1, 2, 3)]
    a, b = aggregate(better), aggregate(worse)
    cmp = compare_probes(a, b)
    assert cmp["a_ahead"] and not cmp["b_ahead"] and cmp["separated"]
    assert cmp["difference"] == pytest.approx(a["mean"]["top1"] - b["mean"]["top1"])
    low, high = cmp["ci95"]
    assert 0.1 < low < cmp["difference"] < high < 0.4 and cmp["num_test"] == {"1": 240, "2": 240, "3": 240}
    reverse = compare_probes(b, a)
    assert reverse["b_ahead"] and reverse["ci95"] == pytest.approx([-high, -low])
    # Two runs with the same hits differ by exactly 0; a re-ordered test list is matched by path.
    twin = aggregate([dict(r, weights="other", test_clips={k: v[::-1] for k, v in r["test_clips"].items()}) for r in better])
    same = compare_probes(a, twin)
    assert same["difference"] == 0.0 and same["ci95"] == [0.0, 0.0] and not same["a_ahead"] and not same["b_ahead"]
    assert same["per_split"]["1"] == {"difference": 0.0, "a_only": 0, "b_only": 0, "mcnemar_p": 1.0}
    with pytest.raises(ValueError, match="other clips"):
        compare_probes(a, aggregate([dict(r, test_clips=dict(r["test_clips"], path=[p + "x" for p in r["test_clips"]["path"]]))
                                     for r in worse]))


def test_mcnemar_counts_the_clips_only_one_encoder_gets_right():
    a = aggregate([_result(1, [True] * 10 + [False] * 10, [f"g{i}" for i in range(20)])])
    b = aggregate([_result(1, [False] * 20, [f"g{i}" for i in range(20)], weights="none")])
    split = compare_probes(a, b)["per_split"]["1"]
    assert (split["a_only"], split["b_only"]) == (10, 0) and split["mcnemar_p"] == pytest.approx(2 * 0.5**10)
