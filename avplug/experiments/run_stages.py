"""One run of a sweep: pretraining, the held-out measures of the final model, downstream evaluation.

:func:`execute_run` runs the stages in order, each idempotent:

* pretraining (:func:`pretrain_stage`; skipped when ``pretrain.json`` says it finished, otherwise
  the engine resumes from the run's last checkpoint);
* the discrepancy measures of the final model on the held-out titles (:func:`discrepancy_stage`,
  ``discrepancy.json``; reused from the engine's record when it measured the final step);
* downstream evaluation with each recipe (:func:`evaluation_stage`, ``eval/<recipe>/results.json``,
  skipped when present for the same weights);

then ``results.json`` (the run's summary) and status ``finished`` in ``run.json``.  The baseline run
(``random_init``) skips pretraining and evaluates randomly initialized encoders.  The summaries of
``results.json`` leave out the per-clip predictions (:data:`PER_CLIP_KEYS`), which stay in
``eval/<recipe>/results.json``.  A stage can be injected (tests; the Slurm job's distributed
pretraining).  :func:`is_finished` says whether a run needs no more work.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from avplug.checksums import load_torch_file
from avplug.config import write_config
from avplug.engine import distributed as du
from avplug.engine.launch import default_num_procs, launch_local
from avplug.engine.metrics import read_metrics
from avplug.evaluation.discrepancy import MEASURE_KEYS
from avplug.evaluation.downstream_protocols import run_evaluation
from avplug.evaluation.heldout_embedding import evaluate_discrepancy
from avplug.experiments import SweepError
from avplug.experiments.run_configs import check_run_dir, eval_cfg, eval_names, run_cfg
from avplug.experiments.sweep_record import RECORD_VERSION, read_json, run_dir, utc_now, write_json
from avplug.models import build_model

logger = logging.getLogger("avplug.sweep")

#: Keys of a downstream summary left out of a run's ``results.json`` (per-clip tables: large).
PER_CLIP_KEYS = ("test_clips",)


def _default_pretrain(cfg) -> dict[str, Any]:
    return launch_local(cfg, cfg.LAUNCH.PROCS_PER_NODE or default_num_procs(), resume=True)


def pretrain_stage(run: Mapping[str, Any], sweep_dir: str | os.PathLike, cfg, pretrain: Callable[[Any], dict] | None = None) -> dict[str, Any]:
    """Pretrain ``run`` unless ``pretrain.json`` says it finished; returns the engine's summary.

    ``pretrain(cfg) -> summary`` defaults to ``launch_local`` with LAUNCH.PROCS_PER_NODE (or one
    rank per GPU) ranks; the engine resumes from the run's last checkpoint.  Only the main process
    writes ``pretrain.json``.
    """
    out = run_dir(sweep_dir, run)
    done = read_json(out / "pretrain.json")
    if isinstance(done, dict) and done.get("last_checkpoint") and Path(done["last_checkpoint"]).is_file():
        logger.info("%s: pretraining finished earlier (%s steps), skipped", run["name"], done.get("steps"))
        return done
    check_run_dir(cfg, out)
    start = time.perf_counter()
    summary = dict((pretrain or _default_pretrain)(cfg))
    if not summary.get("last_checkpoint"):
        raise RuntimeError(f"{run['name']}: pretraining wrote no checkpoint into {out / 'checkpoints'}")
    summary["seconds"] = round(time.perf_counter() - start, 3)
    if du.is_main_process():
        write_json(out / "pretrain.json", summary)
    return summary


def _last_discrepancy_record(metrics_path: Path) -> dict[str, Any] | None:
    if not metrics_path.is_file():
        return None
    try:
        records = [r for r in read_metrics(metrics_path) if all(k in r for k in MEASURE_KEYS)]
    except (OSError, ValueError, KeyError):
        return None
    return records[-1] if records else None


def _default_discrepancy(cfg, weights: str | None, out: Path, device) -> dict[str, Any]:
    """The measures of the checkpoint ``weights`` (None: a randomly initialized model, seeded by SEED)."""
    torch.manual_seed(cfg.SEED)
    model = build_model(cfg)
    if weights:
        state = load_torch_file(weights)
        model.load_state_dict(state.get("model", state))
    model.to(device).eval()
    return evaluate_discrepancy(cfg, model, device, plot_path=out / "score_histograms.png")


def discrepancy_stage(run, sweep_dir, cfg, weights: str | None, step: int | None, *, discrepancy=None, device=None) -> dict[str, Any]:
    """The measures of the run's final model on held-out titles, written to ``discrepancy.json``.

    Skipped when ``discrepancy.json`` exists for the same weights; reused from ``metrics.jsonl``
    when the engine measured the final step; else computed (``discrepancy(cfg, weights, out,
    device)`` defaults to :func:`evaluate_discrepancy` on the checkpoint).  A catalog that cannot
    give the measures (no or too few held-out snippets: ``ValueError``/``LookupError``/``OSError``,
    as the engine skips them) yields ``{"error": ...}`` instead, so the run still finishes and the
    report shows the measures as missing with that reason.
    """
    out = run_dir(sweep_dir, run)
    path = out / "discrepancy.json"
    done = read_json(path)
    if isinstance(done, dict) and done.get("weights") == (weights or "none"):
        return done
    record = _last_discrepancy_record(out / "metrics.jsonl") if weights else None
    if record is not None and step is not None and int(record["step"]) == int(step):
        result = {**record, "source": "metrics.jsonl"}
    else:
        device = device or ("cuda" if _cuda() else "cpu")
        try:
            result = dict((discrepancy or _default_discrepancy)(cfg, weights, out, device))
        except (ValueError, LookupError, OSError) as exc:
            logger.warning("%s: no discrepancy measures: %s", run["name"], exc)
            result = {"error": f"{type(exc).__name__}: {exc}"}
        result["step"] = step
        result["source"] = "final model"
    result["weights"] = weights or "none"
    write_json(path, result)
    return result


def _cuda() -> bool:
    return torch.cuda.is_available()


def _default_evaluate(cfg, weights: str, device) -> dict[str, Any]:
    write_config(cfg, cfg.OUTPUT_DIR)
    return run_evaluation(cfg, weights, device=device)


def evaluation_stage(run, sweep_dir, weights: str, *, evaluate=None, device=None) -> tuple[dict[str, Any], list[str]]:
    """Downstream evaluation of ``weights`` with each recipe of ``run["evals"]``.

    Returns ``({dataset: aggregate summary without PER_CLIP_KEYS}, errors)`` (the per-clip tables
    stay in the recipe's own ``results.json``); a recipe whose ``results.json`` exists for
    the same weights is not rerun.  ``evaluate(cfg, weights, device) -> summary`` defaults to
    :func:`avplug.evaluation.downstream_protocols.run_evaluation`.  A failing recipe is reported in
    ``errors`` and the others still run.
    """
    results: dict[str, Any] = {}
    errors: list[str] = []
    for recipe, name in zip(run["evals"], eval_names(run["evals"])):
        try:
            cfg = eval_cfg(run, sweep_dir, recipe, name)
            path = Path(cfg.OUTPUT_DIR) / "results.json"
            summary = read_json(path)
            if not (isinstance(summary, dict) and summary.get("weights") == weights):
                logger.info("%s: evaluating with %s (%s, %s)", run["name"], recipe, cfg.EVAL.DOWNSTREAM.DATASET, cfg.EVAL.DOWNSTREAM.PROTOCOL)
                summary = (evaluate or _default_evaluate)(cfg, weights, device)
            summary = {**{k: v for k, v in summary.items() if k not in PER_CLIP_KEYS}, "recipe": str(recipe)}
            key = summary.get("dataset", name)
            results[key if key not in results else f"{key} ({name})"] = summary
        except Exception as exc:  # one recipe failing must not lose the others
            logger.error("%s: evaluation with %s failed: %s", run["name"], recipe, exc)
            errors.append(f"{recipe}: {type(exc).__name__}: {exc}")
    return results, errors


def _set_state(out: Path, **state: Any) -> dict[str, Any]:
    path = out / "run.json"
    current = read_json(path)
    current = current if isinstance(current, dict) else {}
    current.update(version=RECORD_VERSION, **state)
    write_json(path, current)
    return current


def execute_run(
    run: Mapping[str, Any],
    sweep_dir: str | os.PathLike,
    *,
    pretrain: Callable[[Any], dict] | None = None,
    discrepancy: Callable[..., dict] | None = None,
    evaluate: Callable[..., dict] | None = None,
    device: Any = None,
    world_size: int | None = None,
) -> dict[str, Any]:
    """Pretrain, measure and evaluate one run (each stage idempotent); returns ``results.json``'s content.

    Writes ``run.json`` with status ``running``, then ``finished`` or ``failed`` (with ``error``);
    an exception of a stage is re-raised after recording it.  An ``invalid`` run is not run.
    The stage callables are for tests and for the Slurm job (see :func:`pretrain_stage`,
    :func:`discrepancy_stage`, :func:`evaluation_stage`).
    """
    if run.get("status") == "invalid":
        raise SweepError(f"{run['name']} is invalid: {run.get('error')}")
    out = run_dir(sweep_dir, run)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    _set_state(out, name=run["name"], status="running", started=utc_now(), error=None, ended=None, seconds=None,
               host=os.uname().nodename)
    try:
        cfg = run_cfg(run, sweep_dir, world_size=world_size)
        if run.get("baseline"):
            write_config(cfg, out)
            weights, steps, summary = None, 0, {"steps": 0, "last_checkpoint": "", "final_loss": None}
        else:
            summary = pretrain_stage(run, sweep_dir, cfg, pretrain)
            weights, steps = summary["last_checkpoint"], int(summary["steps"])
        measures = discrepancy_stage(run, sweep_dir, cfg, weights, steps, discrepancy=discrepancy, device=device)
        downstream, errors = evaluation_stage(run, sweep_dir, weights or "none", evaluate=evaluate, device=device)
        result = {
            "name": run["name"],
            "overrides": dict(run["overrides"]),
            "baseline": bool(run.get("baseline")),
            "checkpoint": weights or "none",
            "steps": steps,
            "final_loss": summary.get("final_loss"),
            "discrepancy": measures,
            "downstream": downstream,
            "evals": list(run["evals"]),
            "errors": errors,
        }
        write_json(out / "results.json", result)
        if errors:
            raise RuntimeError("; ".join(errors))
    except BaseException as exc:
        status = "failed" if isinstance(exc, Exception) else "running"  # Ctrl-C / SIGTERM: left resumable
        _set_state(out, status=status, error=f"{type(exc).__name__}: {exc}", ended=utc_now(), seconds=round(time.perf_counter() - started, 3))
        raise
    _set_state(out, status="finished", ended=utc_now(), seconds=round(time.perf_counter() - started, 3), evals=list(run["evals"]))
    logger.info("%s: finished in %.0f s", run["name"], time.perf_counter() - started)
    return result


def is_finished(sweep_dir: str | os.PathLike, run: Mapping[str, Any]) -> bool:
    """True when ``run`` finished with every evaluation recipe it now asks for, and its files are there.

    Finished means: ``run.json`` says ``finished``, ``results.json`` exists and names the final
    checkpoint, that checkpoint exists (not for the baseline), and the recorded evaluation
    recipes include every recipe of ``run["evals"]``.
    """
    out = run_dir(sweep_dir, run)
    state = read_json(out / "run.json")
    result = read_json(out / "results.json")
    if not (isinstance(state, dict) and state.get("status") == "finished" and isinstance(result, dict)):
        return False
    if not set(run.get("evals", [])) <= set(state.get("evals", [])):
        return False
    checkpoint = result.get("checkpoint", "")
    return bool(run.get("baseline")) or (bool(checkpoint) and Path(checkpoint).is_file())
