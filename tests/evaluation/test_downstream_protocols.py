"""Downstream protocols end to end on tiny real media (fine-tuning, linear probe, aggregation), and the
statistics every result carries: Wilson intervals, bootstrap intervals over groups, paired comparisons."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import binomtest, norm
from scipy.stats import t as t_dist

import avplug.evaluation.downstream_protocols as protocols
from avplug.config import load_config
from avplug.data.downstream_datasets import dataset_splits
from avplug.evaluation.downstream_protocols import (
    aggregate,
    compare_probes,
    fit_linear,
    load_split_result,
    results_markdown,
    run_evaluation,
    run_split,
    splits_of,
    top_k_hits,
    wilson_interval,
    write_summary,
)


def test_tiny_finetune_completes_and_resumes(tiny_cfg, tiny_ucf101):
    cfg = tiny_cfg("UCF101", tiny_ucf101, "EVAL.DOWNSTREAM.PROTOCOL", "finetune")
    result = run_split(cfg, "none", 1)
    assert (result["num_train"], result["num_test"], result["num_classes"], result["num_views"]) == (6, 4, 2, 6)
    clips = result["test_clips"]
    assert clips["path"] == [f"UCF-101/{c}/v_{c}_g0{g}_c01.avi" for c in ("ApplyEyeMakeup", "Archery") for g in (1, 2)]
    assert clips["group"] == [f"{c}_g0{g}" for c in ("ApplyEyeMakeup", "Archery") for g in (1, 2)]
    assert clips["top1"] == [int(p == y) for p, y in zip(clips["prediction"], clips["label"])]
    assert result["top1"] == sum(clips["top1"]) / 4 and result["top1_ci95"] == wilson_interval(sum(clips["top1"]), 4)
    assert result["chance"] == 0.5
    out = cfg.OUTPUT_DIR + "/split1"
    assert json.loads(Path(out, "result.json").read_text()) == result
    epochs = [json.loads(line)["epoch"] for line in Path(out, "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]
    # A rerun (e.g. a requeued job) resumes from the last checkpoint: no epoch is trained again.
    again = run_split(cfg, "none", 1)
    assert [json.loads(line)["epoch"] for line in Path(out, "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert again["test_clips"] == result["test_clips"]


def test_checkpoint_of_another_run_is_an_error(tiny_cfg, tiny_ucf101):
    cfg = tiny_cfg("UCF101", tiny_ucf101, "EVAL.DOWNSTREAM.EPOCHS", "1", "EVAL.DOWNSTREAM.WARMUP_EPOCHS", "0")
    run_split(cfg, "none", 1)
    other = tiny_cfg("UCF101", tiny_ucf101, "EVAL.DOWNSTREAM.EPOCHS", "1", "EVAL.DOWNSTREAM.WARMUP_EPOCHS", "0", "SEED", "1")
    with pytest.raises(RuntimeError, match="belongs to another evaluation run"):
        run_split(other, "none", 1)


def test_linear_probe_separates_separable_videos(tiny_cfg, tiny_ucf101):
    cfg = tiny_cfg("UCF101", tiny_ucf101, "EVAL.DOWNSTREAM.PROTOCOL", "linear")
    result = run_split(cfg, "none", 1)
    assert result["train_top1"] == 1.0 and result["top1"] == 1.0
    assert result["top1_ci95"] == pytest.approx([0.5101, 1.0], abs=1e-4)  # Wilson, 4 of 4


def test_shared_features_give_exactly_the_per_split_results(tiny_cfg, tiny_esc50, monkeypatch):
    """run_evaluation extracts every clip once for all folds; each fold's result is the one a run of that
    fold alone (extracting its own features) gives."""
    extracted = []
    real = protocols.extract_features

    def counting(cfg, backbone, dataset, device, what):
        extracted.extend(p for p, _ in dataset.samples)
        return real(cfg, backbone, dataset, device, what)

    monkeypatch.setattr(protocols, "extract_features", counting)
    cfg = tiny_cfg("ESC50", tiny_esc50, "EVAL.DOWNSTREAM.PROTOCOL", "linear")
    summary = run_evaluation(cfg, "none", [1, 2, 3])
    assert len(extracted) == len(set(extracted)) == 20  # every clip of the 5 folds, once
    for split in (1, 2, 3):
        alone = tiny_cfg("ESC50", tiny_esc50, "EVAL.DOWNSTREAM.PROTOCOL", "linear", "OUTPUT_DIR", f"{cfg.OUTPUT_DIR}-alone{split}")
        result = run_split(alone, "none", split)
        shared = load_split_result(cfg, split)
        assert {k: v for k, v in result.items() if k != "seconds"} == {k: v for k, v in shared.items() if k != "seconds"}
        assert summary["test_clips"][str(split)] == result["test_clips"]
    assert len(extracted) == 20 + 3 * 20  # each fold alone extracts its 16 training and 4 test clips


def test_linear_probe_on_sounds_over_folds(tiny_cfg, tiny_esc50):
    cfg = tiny_cfg("ESC50", tiny_esc50, "EVAL.DOWNSTREAM.PROTOCOL", "linear")
    summary = run_evaluation(cfg, "none", [1, 2])
    assert summary["splits"] == [1, 2] and summary["mean"]["top1"] == 1.0 and summary["std"]["top1"] == 0.0
    assert summary["per_split"]["1"]["num_test"] == 4 and summary["num_test_clips"] == 8 and summary["num_test_groups"] == 8
    # 8 of 8 in 8 groups: Clopper-Pearson at n = 8, scaled by (z / t_7)^2 for 8 groups, low = 0.025^(1 / n)
    n_eff = 8 * (norm.ppf(0.975) / t_dist.ppf(0.975, 7)) ** 2
    assert summary["mean_ci95"]["top1"] == [pytest.approx(0.025 ** (1 / n_eff)), 1.0] and summary["chance"] == 0.5
    written = json.loads(Path(cfg.OUTPUT_DIR, "results.json").read_text())
    assert written == summary
    assert "| mean ± std | 8 | 100.00 ± 0.00 | 51.1-100.0 |" in Path(cfg.OUTPUT_DIR, "results.md").read_text()


def test_fit_linear_recovers_a_separating_direction():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 8, generator=g) * 5 + 100  # far from standardized: folding must undo it
    y = (x[:, 3] > 100).long()
    linear = fit_linear(x, y, 2, weight_decay=1e-4, max_iter=200)
    assert (linear(x).argmax(1) == y).float().mean() > 0.97


def _probe_on(features_of, classes=6, train=600, test=300, seed=0):
    """A linear probe on synthetic features: test top-1 hits and the Wilson interval of their mean."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(train + test) % classes
    x = features_of(y, g)
    linear = fit_linear(x[:train], y[:train], classes, weight_decay=1e-3, max_iter=100)
    with torch.no_grad():
        hits = top_k_hits(linear(x[train:]).softmax(-1), y[train:])["top1"]
    return hits, wilson_interval(int(hits.sum()), test)


def test_probe_on_a_planted_class_signal_is_well_above_chance():
    means = torch.randn(6, 32, generator=torch.Generator().manual_seed(1))
    hits, (low, _) = _probe_on(lambda y, g: 0.5 * means[y] + torch.randn(len(y), 32, generator=g))
    assert low > 0.5  # chance is 1/6


def test_probe_on_pure_noise_is_within_its_interval_of_chance():
    hits, (low, high) = _probe_on(lambda y, g: torch.randn(len(y), 32, generator=g))
    assert low <= 1 / 6 <= high and high - low < 0.1


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


def test_split_results_reload_for_aggregation(tiny_cfg, tiny_esc50):
    cfg = tiny_cfg("ESC50", tiny_esc50, "EVAL.DOWNSTREAM.PROTOCOL", "linear")
    first = run_split(cfg, "none", 3)
    with pytest.raises(FileNotFoundError, match="split 4 has not finished"):
        load_split_result(cfg, 4)
    assert load_split_result(cfg, 3) == first
    path = write_summary(cfg, aggregate([load_split_result(cfg, 3)]))
    assert json.loads(path.read_text())["per_split"]["3"]["top1"] == first["top1"]


@pytest.mark.parametrize("recipe", ["eval_demo.yaml", "eval_demo_hmdb51.yaml", "eval_demo_esc50.yaml"])
def test_demo_recipes_run_every_official_split(recipe):
    cfg = load_config(recipe)
    assert splits_of(cfg) == list(dataset_splits(cfg.EVAL.DOWNSTREAM.DATASET)) and cfg.EVAL.DOWNSTREAM.PROTOCOL == "linear"


@pytest.mark.parametrize(("recipe", "views"), [("eval_ucf101.yaml", (10, 3)), ("eval_hmdb51.yaml", (10, 3)), ("eval_esc50.yaml", (10, None))])
def test_paper_recipes_keep_the_papers_test_views(recipe, views):
    e = load_config(recipe).EVAL.DOWNSTREAM
    assert (e.NUM_CLIPS, e.NUM_CROPS if views[1] else None) == views and splits_of(load_config(recipe)) == list(dataset_splits(e.DATASET))
