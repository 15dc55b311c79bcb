"""The main job on the built-in demo corpus, end to end (what ``make demo`` runs).

corpus -> ingest -> preprocess -> pretrain -> discrepancy measures and linear probes on the
downstream stand-ins, for the pretrained and for randomly initialized encoders -> ``report.md``.
Every stage reuses what an earlier run left in ``out_dir`` (the corpus, the store, checkpoints).
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Sequence

import torch

from avplug import pipeline
from avplug.config import load_config

_log = logging.getLogger("avplug.demo")

EVAL_RECIPES = ("eval_demo.yaml", "eval_demo_hmdb51.yaml", "eval_demo_esc50.yaml")


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


def _discrepancy(cfg, weights: str | None, plot: Path) -> dict:
    from avplug.evaluation.discrepancy import evaluate_discrepancy
    from avplug.models import build_model

    torch.manual_seed(cfg.SEED)
    model = build_model(cfg)
    if weights:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True)["model"])
    model.eval()
    return evaluate_discrepancy(cfg, model, torch.device("cpu"), plot_path=plot)


def run_demo(out_dir: str | Path, *, cfg_name: str = "demo.yaml", opts: Sequence[str] = (), procs: int = 1, evaluate: bool = True) -> str:
    """Run every stage into ``out_dir``; returns (and writes to ``out_dir/report.md``) the report."""
    from avplug.engine.launch import launch_local
    from avplug.engine.metrics import read_metrics

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
    losses = [r["loss"] for r in read_metrics(Path(cfg.OUTPUT_DIR) / "metrics.jsonl") if "loss" in r]
    weights = summary["last_checkpoint"]

    rows_d, rows_p = [], []
    if evaluate:
        _log.info("== 3/4 discrepancy measures on held-out titles")
        t = time.perf_counter()
        for label, w in (("random init", None), ("pretrained", weights)):
            measures = _discrepancy(cfg, w, out_dir / f"discrepancy_{label.replace(' ', '_')}.png")
            rows_d.append((label, measures))
        timings["discrepancy"] = time.perf_counter() - t
        _log.info("== 4/4 linear probes on the downstream stand-ins")
        from avplug.evaluation.downstream import run_evaluation

        t = time.perf_counter()
        for recipe in EVAL_RECIPES:
            ecfg = _eval_cfg(recipe, cfg, out_dir)
            for label, w in (("random init", None), ("pretrained", weights)):
                res = run_evaluation(ecfg, w)
                rows_p.append((ecfg.EVAL.DOWNSTREAM.DATASET, label, res["mean"]["top1"]))
        timings["downstream"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0

    lines = [
        "# avplug demo report", "",
        f"- pretraining: {summary['steps']} steps ({summary['epochs']:.1f} epochs), world size {summary['world_size']}, "
        f"{summary['clips_per_s']:.1f} clips/s",
        f"- loss (Eq. 1): first logged {losses[0]:.4f} -> final {losses[-1]:.4f}" if losses else "- loss: not logged",
        f"- checkpoint: {weights}",
        f"- loss curve: {Path(cfg.OUTPUT_DIR) / 'loss_curve.png'}; metrics: {Path(cfg.OUTPUT_DIR) / 'metrics.jsonl'}",
        "- wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()),
    ]
    if rows_d:
        keys = ["KL(S-||S+)", "KL(S!=||S+)", "KL(S-||S!=)", "gap"]
        lines += ["", "## Discrepancy measures (held-out titles)", "", "| encoders | " + " | ".join(keys) + " |",
                  "| --- |" + " ---: |" * len(keys)]
        lines += [f"| {label} | " + " | ".join(f"{m[k]:.4f}" for k in keys) + " |" for label, m in rows_d]
    if rows_p:
        lines += ["", "## Linear probes on the downstream stand-ins (top-1, split/fold 1)", "",
                  "| dataset | encoders | top-1 (%) |", "| --- | --- | ---: |"]
        lines += [f"| {d} | {label} | {100 * acc:.1f} |" for d, label, acc in rows_p]
    report = "\n".join(lines) + "\n"
    (out_dir / "report.md").write_text(report)
    (out_dir / "report.json").write_text(json.dumps({"summary": summary, "timings": timings,
                                                     "discrepancy": dict(rows_d),
                                                     "probes": [list(r) for r in rows_p]}, indent=2))
    return report
