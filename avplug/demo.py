"""The main job on the built-in demo corpus, end to end (what ``make demo`` runs).

corpus -> ingest -> preprocess -> pretrain -> held-out measures (cross-modal retrieval and the
discrepancy measures, with intervals) and linear probes on every split of the downstream stand-ins,
for the pretrained and for randomly initialized encoders -> ``report.md`` / ``report.json``.
Every stage reuses what an earlier run left in ``out_dir`` (the corpus, the store, checkpoints).

Every figure of the report carries its sample size, its chance level and a 95% interval (title
bootstrap for held-out figures, see :mod:`avplug.evaluation.intervals`; bootstrap over test groups
for the probes, see :mod:`avplug.evaluation.downstream_statistics`), and each pretrained-vs-random
comparison says whether the difference is larger than the intervals.
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from avplug import pipeline
from avplug.checksums import load_torch_file
from avplug.config import load_config
from avplug.engine.launch import launch_local
from avplug.engine.metrics import plot_heldout_curve, read_metrics
from avplug.evaluation.downstream_protocols import run_evaluation
from avplug.evaluation.downstream_statistics import compare_probes
from avplug.evaluation.heldout_embedding import evaluate_discrepancy
from avplug.evaluation.heldout_report import heldout_markdown
from avplug.evaluation.intervals import format_estimate
from avplug.models import build_model

_log = logging.getLogger("avplug.demo")

EVAL_RECIPES = ("eval_demo.yaml", "eval_demo_hmdb51.yaml", "eval_demo_esc50.yaml")
ENCODERS = ("random init", "pretrained")


def demo_cfg(out_dir: Path, cfg_name: str = "demo.yaml", opts: Sequence[str] = (), plugins: Sequence[str] = ()):
    """The demo recipe with every path under ``out_dir``."""
    paths = [
        "DATA.SOURCE", str(out_dir / "corpus" / "titles"), "DATA.META", str(out_dir / "corpus" / "meta.csv"),
        "DATA.CATALOG_DIR", str(out_dir / "catalog"), "DATA.STORE_DIR", str(out_dir / "store"),
        "OUTPUT_DIR", str(out_dir / "pretrain"),
    ]
    return load_config(cfg_name, paths + list(opts), plugins=plugins)


def _eval_cfg(recipe: str, pretrain_cfg, out_dir: Path):
    base = load_config(recipe)
    root = Path(base.EVAL.DOWNSTREAM.ROOT).name  # ucf101 / hmdb51 / esc50
    opts = [
        "EVAL.DOWNSTREAM.ROOT", str(out_dir / "corpus" / root),
        "OUTPUT_DIR", str(out_dir / "eval" / root),
        "MODEL.VIDEO.WIDTH", str(pretrain_cfg.MODEL.VIDEO.WIDTH), "MODEL.AUDIO.WIDTH", str(pretrain_cfg.MODEL.AUDIO.WIDTH),
    ]
    return load_config(recipe, opts, plugins=pretrain_cfg.PLUGINS)


def heldout_figures(cfg, weights: str | None, plot: Path) -> dict[str, Any]:
    """:func:`evaluate_discrepancy` of the encoders in ``weights`` (None: random init, seeded by cfg.SEED)."""
    torch.manual_seed(cfg.SEED)
    model = build_model(cfg)
    if weights:
        model.load_state_dict(load_torch_file(weights)["model"])
    model.eval()
    return evaluate_discrepancy(cfg, model, torch.device("cpu"), plot_path=plot)


def run_demo(out_dir: str | Path, *, cfg_name: str = "demo.yaml", opts: Sequence[str] = (), procs: int = 1, evaluate: bool = True) -> str:
    """Run every stage into ``out_dir``; returns (and writes to ``out_dir/report.md``) the report."""
    out_dir = Path(out_dir).resolve()
    cfg = demo_cfg(out_dir, cfg_name, opts)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    _log.info("== 1/4 demo corpus, ingest, snippet store")
    pipeline.prepare_data(cfg, demo=True)
    timings["data"] = time.perf_counter() - t0

    _log.info("== 2/4 pretraining (%s)", cfg.OUTPUT_DIR)
    t = time.perf_counter()
    summary = launch_local(cfg, procs)
    timings["pretrain"] = time.perf_counter() - t
    weights = summary["last_checkpoint"]
    results: dict[str, Any] = {"summary": summary, "heldout": {}, "probes": {}, "comparisons": {}}
    if evaluate:
        _log.info("== 3/4 held-out retrieval and discrepancy measures")
        t = time.perf_counter()
        for label, w in zip(ENCODERS, (None, weights)):
            results["heldout"][label] = heldout_figures(cfg, w, out_dir / f"score_histograms_{label.replace(' ', '_')}.png")
        timings["heldout"] = time.perf_counter() - t
        _log.info("== 4/4 linear probes on every split of the downstream stand-ins")
        t = time.perf_counter()
        for recipe in EVAL_RECIPES:
            ecfg = _eval_cfg(recipe, cfg, out_dir)
            runs = {label: run_evaluation(ecfg, w) for label, w in zip(ENCODERS, (None, weights))}
            dataset = ecfg.EVAL.DOWNSTREAM.DATASET
            results["probes"][dataset] = runs
            results["comparisons"][dataset] = compare_probes(runs["pretrained"], runs["random init"])
        timings["downstream"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    results["timings"] = timings
    report = demo_report(cfg, results)
    (out_dir / "report.md").write_text(report)
    for runs in results["probes"].values():  # per-clip tables stay in each eval folder's results.json
        for run in runs.values():
            run.pop("test_clips", None)
    for comparison in results["comparisons"].values():
        comparison.pop("per_split", None)
    (out_dir / "report.json").write_text(json.dumps(results, indent=2, default=str))
    return report


def _pretraining_lines(cfg, results: dict[str, Any]) -> list[str]:
    summary, timings = results["summary"], results["timings"]
    out = Path(cfg.OUTPUT_DIR)
    records = read_metrics(out / "metrics.jsonl")
    losses = [r["loss"] for r in records if "loss" in r]
    chance = math.log(2 * cfg.SOLVER.BATCH_SIZE - 1)
    lines = [
        "# avplug demo report", "",
        f"- pretraining: {summary['steps']} steps ({summary['epochs']:.1f} epochs) of batch {cfg.SOLVER.BATCH_SIZE}, "
        f"{cfg.SAMPLER.NAME} k = {cfg.SAMPLER.K}, world size {summary['world_size']}, {summary['clips_per_s']:.1f} clips/s",
        f"- loss (Eq. 1): first logged {losses[0]:.3f} -> final {losses[-1]:.3f} (chance level log(2B - 1) = {chance:.3f})"
        if losses else "- loss: not logged",
        f"- checkpoint: {summary['last_checkpoint']}",
        f"- plots: {out / 'loss_curve.png'} (loss), {out / 'heldout_curve.png'} (held-out retrieval during training)",
        "- wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()),
    ]
    if (out / "metrics.jsonl").is_file() and plot_heldout_curve(out / "metrics.jsonl", out / "heldout_curve.png") is None:
        lines[-2] = f"- plots: {out / 'loss_curve.png'} (loss; no held-out measures were logged during training)"
    return lines


def _probe_lines(probes: dict[str, dict[str, Any]], comparisons: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "", "## Linear probes on the downstream stand-ins (top-1 %, mean over every official split/fold)", "",
        "| dataset | splits | test clips | chance | random init | pretrained | pretrained - random | ahead by more than the intervals |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for dataset, runs in probes.items():
        rnd, pre, cmp = runs["random init"], runs["pretrained"], comparisons[dataset]

        def pct(run):
            lo, hi = run["mean_ci95"]["top1"]
            return format_estimate(100 * run["mean"]["top1"], None if lo is None else 100 * lo, None if hi is None else 100 * hi, digits=1)

        lo, hi = cmp["ci95"]
        diff = format_estimate(100 * cmp["difference"], None if lo is None else 100 * lo, None if hi is None else 100 * hi, digits=1)
        verdict = "yes" if cmp["separated"] else ("ahead (paired), intervals overlap" if cmp["a_ahead"] else "no")
        per_split = sorted({v["num_test"] for v in pre["per_split"].values()})
        lines.append(f"| {dataset} | {','.join(map(str, pre['splits']))} | {pre['num_test_clips']} ({'-'.join(map(str, per_split))} per split) "
                     f"| {100 * pre['chance']:.1f} | {pct(rnd)} | {pct(pre)} | {diff} | {verdict} |")
    if probes:
        lines += ["", "Intervals (95%): per split a Wilson score interval over its test clips; the mean over splits a "
                  "Clopper-Pearson interval at the effective sample size of a bootstrap over the test groups (the recordings "
                  "clips share); the difference a paired bootstrap over the same groups. \"yes\": the two means' intervals do "
                  "not overlap."]
    return lines


def demo_report(cfg, results: dict[str, Any]) -> str:
    """``report.md`` of :func:`run_demo`'s results."""
    lines = _pretraining_lines(cfg, results)
    if results["heldout"]:
        lines += heldout_markdown(results["heldout"], baseline="random init")
    if results["probes"]:
        lines += _probe_lines(results["probes"], results["comparisons"])
    return "\n".join(lines) + "\n"
