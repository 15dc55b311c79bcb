"""Downstream protocols end to end on tiny real media: fine-tuning, linear probe, aggregation."""
import json
from pathlib import Path

import pytest
import torch

from avplug.evaluation.downstream import (
    aggregate,
    fit_linear,
    results_markdown,
    run_evaluation,
    run_split,
)


def test_tiny_finetune_completes_and_resumes(tiny_cfg, tiny_ucf101):
    cfg = tiny_cfg("UCF101", tiny_ucf101, "EVAL.DOWNSTREAM.PROTOCOL", "finetune")
    result = run_split(cfg, "none", 1)
    assert 0.0 <= result["top1"] <= 1.0 and 0.0 <= result["top5"] <= 1.0
    assert result["top5"] == 1.0  # two classes: top-5 is top-2
    assert (result["num_train"], result["num_test"], result["num_classes"], result["num_views"]) == (6, 4, 2, 6)
    out = cfg.OUTPUT_DIR + "/split1"
    assert json.loads(Path(out, "result.json").read_text()) == result | {"seconds": result["seconds"]}
    epochs = [json.loads(line)["epoch"] for line in Path(out, "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]
    # A rerun (e.g. a requeued job) resumes from the last checkpoint: no epoch is trained again.
    again = run_split(cfg, "none", 1)
    assert [json.loads(line)["epoch"] for line in Path(out, "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert again["top1"] == result["top1"]


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


def test_linear_probe_on_sounds_over_folds(tiny_cfg, tiny_esc50):
    cfg = tiny_cfg("ESC50", tiny_esc50, "EVAL.DOWNSTREAM.PROTOCOL", "linear")
    summary = run_evaluation(cfg, "none", [1, 2])
    assert summary["splits"] == [1, 2] and summary["mean"]["top1"] == 1.0 and summary["std"]["top1"] == 0.0
    written = json.loads(Path(cfg.OUTPUT_DIR, "results.json").read_text())
    assert written == summary
    assert "| mean ± std | 100.00 ± 0.00 |" in Path(cfg.OUTPUT_DIR, "results.md").read_text()


def test_fit_linear_recovers_a_separating_direction():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 8, generator=g) * 5 + 100  # far from standardized: folding must undo it
    y = (x[:, 3] > 100).long()
    linear = fit_linear(x, y, 2, weight_decay=1e-4, max_iter=200)
    assert (linear(x).argmax(1) == y).float().mean() > 0.97


def test_aggregate_and_markdown():
    results = [
        {"dataset": "UCF101", "protocol": "finetune", "weights": "w.pth", "split": s, "top1": t1, "top5": t5}
        for s, t1, t5 in [(2, 0.5, 0.8), (1, 0.7, 0.9), (3, 0.6, 1.0)]
    ]
    summary = aggregate(results)
    assert summary["splits"] == [1, 2, 3]
    assert summary["mean"]["top1"] == pytest.approx(0.6) and summary["std"]["top1"] == pytest.approx(0.1)
    assert summary["per_split"]["2"] == {"top1": 0.5, "top5": 0.8}
    table = results_markdown(summary)
    assert "| 1 | 70.00 | 90.00 |" in table and "| mean ± std | 60.00 ± 10.00 | 90.00 ± 10.00 |" in table
    with pytest.raises(ValueError, match="mix several dataset"):
        aggregate(results + [dict(results[0], dataset="HMDB51", split=4)])
    with pytest.raises(ValueError, match="appears twice"):
        aggregate(results + [results[0]])


def test_split_results_reload_for_aggregation(tiny_cfg, tiny_esc50):
    from avplug.evaluation.downstream import load_split_result, write_summary

    cfg = tiny_cfg("ESC50", tiny_esc50, "EVAL.DOWNSTREAM.PROTOCOL", "linear")
    first = run_split(cfg, "none", 3)
    with pytest.raises(FileNotFoundError, match="split 4 has not finished"):
        load_split_result(cfg, 4)
    assert load_split_result(cfg, 3) == first
    path = write_summary(cfg, aggregate([load_split_result(cfg, 3)]))
    assert json.loads(path.read_text())["per_split"]["3"]["top1"] == first["top1"]
