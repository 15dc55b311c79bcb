"""Ablation sweeps on Slurm: one array task per run, then one report job.

:func:`submit_sweep` (for ``tools/sweep.py --slurm``) submits

* a Slurm job array with one task per unfinished run (``submitit`` ``map_array``).  A task is the
  whole run: pretraining (over ``LAUNCH.PROCS_PER_NODE`` or one rank per GPU of one node), then on
  rank 0 the discrepancy measures and the downstream evaluation recipes
  (:func:`avplug.experiments.run_stages.execute_run`).  :class:`SweepRunJob` is a submitit
  ``Checkpointable``: a preempted or timed-out task requeues itself and the fresh copy resumes
  from the run's folder (the engine's last checkpoint, the stages already written);
* a report job (``afterany`` the array) that copies every run's status into ``sweep.json`` and
  writes the report (:func:`avplug.experiments.reports.build_report`) into ``SWEEP_DIR/report``.

Submitting the same sweep again submits only the runs that have not finished.  Logs go to
``SWEEP_DIR/slurm/<job id>/``, the code snapshot to ``SWEEP_DIR/code/``.
"""
from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import submitit
from fvcore.common.config import CfgNode

from jobs import slurm, snapshot

_log = logging.getLogger("avplug.jobs")

_RANK_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class SweepRunJob(submitit.helpers.Checkpointable):
    """One array task: every rank pretrains ``run``; rank 0 then measures and evaluates it.

    Returns :func:`execute_run`'s result on rank 0 and ``{"name", "rank"}`` on the others.
    """

    def __init__(self, sweep_dir: str) -> None:
        self.sweep_dir = sweep_dir

    @slurm.job_exits_on_user_error
    def __call__(self, run: Mapping[str, Any]) -> dict[str, Any]:
        from avplug.builtin_plugins import setup_plugins
        from avplug.engine import distributed as du
        from avplug.engine.log import setup_logging
        from avplug.engine.train import run_pretraining
        from avplug.experiments.run_configs import run_cfg
        from avplug.experiments.run_stages import execute_run, pretrain_stage
        from avplug.experiments.sweep_record import run_dir

        slurm.guard_signal_handlers()
        slurm.check_code_snapshot()
        setup_plugins(run.get("plugins", ()))
        env = slurm.export_torch_distributed_env()
        rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
        setup_logging(run_dir(self.sweep_dir, run), rank)

        def pretrain(cfg):
            return run_pretraining(cfg, resume=True)

        if world > 1 and not run.get("baseline"):
            cfg = run_cfg(run, self.sweep_dir, world_size=world)
            du.init_distributed(cfg.LAUNCH.BACKEND)
            try:
                pretrain_stage(run, self.sweep_dir, cfg, pretrain)
            finally:
                du.destroy()
        if rank != 0:
            return {"name": run["name"], "rank": rank}
        for var in _RANK_VARS:  # rank 0 goes on alone: evaluation is single-process
            os.environ.pop(var, None)
        return execute_run(run, self.sweep_dir, pretrain=pretrain)

    def checkpoint(self, run: Mapping[str, Any]) -> submitit.helpers.DelayedSubmission:
        """A fresh task for the same run; it resumes from the run's folder, not from pickled state."""
        _log.info("preempted or timed out: requeueing run %s", run.get("name"))
        return submitit.helpers.DelayedSubmission(SweepRunJob(self.sweep_dir), run)


def aggregate_sweep(sweep_dir: str) -> dict[str, Any]:
    """The report job: statuses into ``sweep.json``, the report into ``SWEEP_DIR/report``.

    Returns ``{"counts": {status: runs}, "report": path of report.md}``.
    """
    from avplug.experiments.reports import build_report
    from avplug.experiments.sweep_record import refresh_sweep_record

    counts = refresh_sweep_record(sweep_dir)
    report = build_report([sweep_dir], Path(sweep_dir) / "report")
    _log.info("sweep %s: %s; report %s", sweep_dir, counts, report["files"]["report.md"])
    return {"counts": counts, "report": report["files"]["report.md"]}


def submit_sweep(cfg: CfgNode, sweep_dir: str | os.PathLike, runs: Sequence[Mapping[str, Any]], args: argparse.Namespace):
    """Submit the array of unfinished ``runs`` and the report job; returns ``(run_jobs, report_job)``.

    ``cfg`` (the base cfg) gives the ``LAUNCH.SLURM`` defaults under the flags of
    :func:`jobs.slurm.add_slurm_args` in ``args``; ``args.array_parallelism`` caps the tasks
    running at once.  ``None`` on ``args.dry_run`` (prints the sbatch scripts).  With
    ``args.wait`` it follows the jobs and raises :class:`jobs.slurm.SlurmError` naming the runs
    that failed.
    """
    from avplug.experiments.run_stages import is_finished

    sweep_dir = Path(sweep_dir).resolve()
    todo = [dict(r) for r in runs if r.get("status") != "invalid" and not is_finished(sweep_dir, r)]
    opts = slurm.resolve_slurm_options(cfg, args)
    procs = slurm.tasks_per_node(cfg, opts)
    folder = sweep_dir / "slurm" / "%j"
    parallel = getattr(args, "array_parallelism", None) or 256

    def params_for(code: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        params = slurm.sbatch_parameters(opts, nodes=1, ntasks_per_node=procs, setup=snapshot.python_path_setup(code))
        params.update(job_name=f"{opts.job_name}-sweep", array_parallelism=parallel)
        report = {k: v for k, v in params.items() if k not in ("gpus_per_node", "array_parallelism")}
        report.update(nodes=1, ntasks_per_node=1, job_name=f"{opts.job_name}-sweep-report")
        return params, report

    if getattr(args, "dry_run", False):
        params, report = params_for(snapshot.snapshot_dir(sweep_dir))
        print(f"# would submit a Slurm array of {len(todo)} run(s) ({', '.join(r['name'] for r in todo) or 'none'}), "
              f"1 node x {procs} task(s) each, then a report job; output in {sweep_dir}")
        if todo:
            print(slurm.sbatch_script(folder, params, array_size=len(todo)))
        print(slurm.sbatch_script(folder, report))
        return None

    code = snapshot.snapshot_code(sweep_dir)
    params, report = params_for(code)
    run_jobs = []
    if todo:
        executor = slurm.make_executor(folder, params, max_requeues=opts.max_requeues)
        run_jobs = executor.map_array(SweepRunJob(str(sweep_dir)), todo)
        array_id = run_jobs[0].job_id.split("_")[0]
        report["dependency"] = f"afterany:{array_id}"
        print(f"submitted Slurm array {array_id}: {len(todo)} run(s) ({', '.join(r['name'] for r in todo)})", flush=True)
    else:
        print("every run has finished already: submitting the report job only", flush=True)
    report_job = slurm.make_executor(folder, report, max_requeues=0).submit(slurm.job_exits_on_user_error(aggregate_sweep), str(sweep_dir))
    print(f"submitted report job {report_job.job_id}\n  output: {sweep_dir}\n  code:   {code}", flush=True)

    if getattr(args, "wait", False):
        ids = sorted({j.job_id.split("_")[0] for j in run_jobs}) + [report_job.job_id]
        slurm.wait_for_jobs(ids)
        errors = []
        for run, job in zip(todo, run_jobs):
            try:
                slurm.job_results(job)
            except slurm.SlurmError as exc:
                errors.append(f"{run['name']}: {exc}")
        try:
            summary = slurm.job_results(report_job)[0]
            print(f"sweep: {summary['counts']}; report {summary['report']}", flush=True)
        except slurm.SlurmError as exc:
            errors.append(f"report: {exc}")
        if errors:
            raise slurm.SlurmError("sweep on Slurm failed:\n" + "\n".join(errors))
    return run_jobs, report_job
