"""Downstream evaluation on Slurm: one array task per official split, then one aggregate job.

:func:`submit_evaluation` (for ``tools/evaluate.py --slurm``) submits

* a Slurm array with one task per split (``avplug.evaluation.downstream_protocols.run_split``); fine-tuning
  checkpoints every epoch into ``OUTPUT_DIR/split<N>/checkpoints`` and resumes from there, so a
  preempted or timed-out task requeues itself (:class:`EvaluateSplitJob` is a submitit
  ``Checkpointable``) and carries on from its last epoch;
* an aggregate job (``afterany`` the array) that reads every split's ``result.json`` and writes
  ``OUTPUT_DIR/results.json`` and ``results.md``, as a local ``tools/evaluate.py`` run does.

Each split task gets one GPU when the request has GPUs (``--gpus-per-node`` > 0), else none.
"""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import submitit
from fvcore.common.config import CfgNode

from jobs import slurm, snapshot

_log = logging.getLogger("avplug.jobs")


class EvaluateSplitJob(submitit.helpers.Checkpointable):
    """One array task: train and test one official split; returns ``run_split``'s result dict."""

    def __init__(self, cfg: CfgNode, weights: str) -> None:
        self.cfg, self.weights = cfg, weights

    @slurm.job_exits_on_user_error
    def __call__(self, split: int) -> dict[str, Any]:
        from avplug.builtin_plugins import setup_plugins
        from avplug.engine.log import setup_logging
        from avplug.evaluation.downstream_protocols import run_split

        slurm.guard_signal_handlers()
        slurm.check_code_snapshot()
        setup_plugins(self.cfg.PLUGINS)
        setup_logging(self.cfg.OUTPUT_DIR)
        return run_split(self.cfg, self.weights, split)

    def checkpoint(self, split: int) -> submitit.helpers.DelayedSubmission:
        """A fresh task for the same split; fine-tuning resumes from the split's last epoch checkpoint."""
        return submitit.helpers.DelayedSubmission(EvaluateSplitJob(self.cfg, self.weights), split)


def missing_splits(cfg: CfgNode, splits: Sequence[int]) -> list[int]:
    """The splits among ``splits`` without a ``result.json`` yet."""
    from avplug.evaluation.downstream_protocols import split_dir

    return [s for s in splits if not (split_dir(cfg, s) / "result.json").is_file()]


def aggregate_results(cfg: CfgNode, splits: Sequence[int]) -> dict[str, Any]:
    """Aggregate the splits' ``result.json`` into ``OUTPUT_DIR/results.json`` and ``results.md``.

    Raises :class:`jobs.slurm.SlurmError` naming the splits that have no result (their task failed).
    """
    from avplug.evaluation.downstream_protocols import load_split_result, write_summary
    from avplug.evaluation.downstream_statistics import aggregate

    missing = missing_splits(cfg, splits)
    if missing:
        raise slurm.SlurmError(
            f"{cfg.OUTPUT_DIR}: no result for split(s) {missing} (see their logs); submit the same command "
            "again: finished splits are reused and unfinished fine-tuning resumes from its last epoch"
        )
    summary = aggregate(load_split_result(cfg, s) for s in splits)
    write_summary(cfg, summary)
    return summary


def evaluate_split_then_aggregate(cfg: CfgNode, weights: str, split: int, splits: Sequence[int]) -> dict[str, Any]:
    """Run one split, then aggregate if every split of ``splits`` has its result (last one wins).

    For schedulers without job dependencies (TorchX): each replica runs its split; a split's
    ``result.json`` is on disk before its replica checks, so the last to check aggregates.
    Returns the split's result with ``"aggregate"`` (the summary or None).
    """
    result = EvaluateSplitJob(cfg, weights)(split)
    result["aggregate"] = None if missing_splits(cfg, splits) else aggregate_results(cfg, splits)
    return result


def submit_evaluation(cfg: CfgNode, args: argparse.Namespace, *, weights: str, splits: Sequence[int] | None = None):
    """Submit the per-split array and the aggregate job; returns ``(split_jobs, aggregate_job)``.

    ``None`` on ``args.dry_run`` (prints the sbatch scripts).  With ``args.wait`` it follows the
    jobs and raises :class:`jobs.slurm.SlurmError` if a split or the aggregation failed.
    Logs go to ``OUTPUT_DIR/slurm/``, the code snapshot to ``OUTPUT_DIR/code/``.
    """
    from avplug.config import write_config
    from avplug.evaluation.downstream_protocols import splits_of

    splits = [int(s) for s in splits] if splits else splits_of(cfg)
    run_cfg = cfg.clone()
    run_cfg.defrost()
    run_cfg.OUTPUT_DIR = str(Path(cfg.OUTPUT_DIR).resolve())
    run_cfg.freeze()
    out = Path(run_cfg.OUTPUT_DIR)
    opts = slurm.resolve_slurm_options(cfg, args)
    resources = {"nodes": 1, "ntasks_per_node": 1, "gpus_per_node": 1 if opts.gpus_per_node else 0}

    if getattr(args, "dry_run", False):
        setup = snapshot.python_path_setup(snapshot.snapshot_dir(out))
        print(f"# would submit a Slurm array over splits {splits} of {cfg.EVAL.DOWNSTREAM.DATASET}, then an aggregate job")
        print(slurm.sbatch_script(out / "slurm" / "%j", slurm.sbatch_parameters(opts, setup=setup, **resources), array_size=len(splits)))
        return None

    weights = weights if weights in ("", "none") else str(Path(weights).resolve())
    code = snapshot.snapshot_code(out)
    params = slurm.sbatch_parameters(opts, setup=snapshot.python_path_setup(code), **resources)
    write_config(run_cfg, out)
    array_ex = slurm.make_executor(out / "slurm" / "%j", params, max_requeues=opts.max_requeues)
    array_ex.update_parameters(job_name=f"{opts.job_name}-eval")
    with slurm.sbatch_errors(f"the evaluation array ({len(splits)} splits)"):
        split_jobs = array_ex.map_array(EvaluateSplitJob(run_cfg, weights), splits)
    array_id = split_jobs[0].job_id.split("_")[0]
    agg_params = dict(params, dependency=f"afterany:{array_id}", job_name=f"{opts.job_name}-aggregate", gpus_per_node=None)
    agg_params = {k: v for k, v in agg_params.items() if v is not None}
    with slurm.sbatch_errors("the aggregate job"):
        agg_job = slurm.make_executor(out / "slurm" / "%j", agg_params, max_requeues=0).submit(slurm.job_exits_on_user_error(aggregate_results), run_cfg, splits)
    print(
        f"submitted Slurm array {array_id} (splits {splits}) and aggregate job {agg_job.job_id}\n"
        f"  output: {out}\n  code:   {code}",
        flush=True,
    )
    if getattr(args, "wait", False):
        slurm.wait_for_jobs([array_id, agg_job.job_id])
        errors = []
        for job in split_jobs:
            try:
                slurm.job_results(job)
            except slurm.SlurmError as exc:
                errors.append(str(exc))
        try:
            summary = slurm.job_results(agg_job)[0]
        except slurm.SlurmError as exc:
            errors.append(str(exc))
        if errors:
            raise slurm.SlurmError("evaluation on Slurm failed:\n" + "\n".join(errors))
        print(f"results: {out / 'results.json'}: mean {summary['mean']}", flush=True)
    return split_jobs, agg_job
