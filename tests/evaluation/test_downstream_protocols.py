"""Downstream protocols end to end on tiny real media (fine-tuning, linear probe, shared features,
split results on disk), and the linear probe's fit on synthetic features."""
import json
from pathlib import Path

import pytest
import torch
from scipy.stats import norm
from scipy.stats import t as t_dist

import avplug.evaluation.downstream_linear_probe as linear_probe_module
from avplug.config import load_config
from avplug.data.downstream_datasets import dataset_splits
from avplug.evaluation.downstream_linear_probe import fit_linear
from avplug.evaluation.downstream_protocols import (
    load_split_result,
    run_evaluation,
    run_split,
    splits_of,
    write_summary,
)
from avplug.evaluation.downstream_statistics import aggregate, top_k_hits, wilson_interval


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
    real = linear_probe_module.extract_features

    def counting(cfg, backbone, dataset, device, what):
        extracted.extend(p for p, _ in dataset.samples)
        return real(cfg, backbone, dataset, device, what)

    monkeypatch.setattr(linear_probe_module, "extract_features", counting)
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
