"""Pretraining on Slurm: the job submitit runs on every task, and its submission.

:func:`submit_pretraining` snapshots the code, writes the resolved config into ``OUTPUT_DIR``,
and submits :class:`PretrainJob` with one task per GPU (or one per node on a CPU-only
partition); ``--dry-run`` prints the sbatch script instead, ``--wait`` follows the job and
streams rank 0's log.

:class:`PretrainJob` is a ``submitit.helpers.Checkpointable``.  On a preemption or time-out
signal submitit calls :meth:`PretrainJob.checkpoint` on rank 0, which returns a *fresh* job
for the same cfg that resumes: the requeued job reloads everything from the last periodic
checkpoint in ``OUTPUT_DIR`` (model, optimizer, sampler position, RNG), not from pickled Python
state.  Its cfg is the one its own checkpoints store, so the config comparison of a resume
(:mod:`avplug.engine.run_dir`) passes; a job started with ``--resume`` keeps that mode when
requeued (it may not have written a checkpoint of its own yet).  The previous task's death
released the OUTPUT_DIR lock.  The engine writes those checkpoints every ``SOLVER.CHECKPOINT_PERIOD`` steps, so a
preempted run loses at most the steps since the last one and otherwise finishes exactly as an
uninterrupted run would.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import submitit
from fvcore.common.config import CfgNode

from avplug.config import validate_cfg, write_config
from avplug.engine.run_dir import prepare_submission, resume_from_flags
from jobs import slurm, snapshot

_log = logging.getLogger("avplug.jobs")


class PretrainJob(submitit.helpers.Checkpointable):
    """One rank of pretraining: Slurm environment -> torch.distributed -> ``run_pretraining``.

    ``cfg`` is the frozen, resolved cfg (OUTPUT_DIR absolute).  ``resume``: True (continue a
    matching checkpoint, refuse one with another config), "force" (``--resume``) or False (start
    over, the previous run set aside) on the first start only; a requeued copy always resumes.
    Returns the engine's summary dict on every rank.
    """

    def __init__(self, cfg: CfgNode, *, resume: bool | str = True) -> None:
        self.cfg = cfg
        self.resume = resume

    @slurm.job_exits_on_user_error
    def __call__(self) -> dict[str, Any]:
        from avplug.builtin_plugins import setup_plugins
        from avplug.engine import distributed as du
        from avplug.engine.train import run_pretraining

        slurm.guard_signal_handlers()
        slurm.check_code_snapshot()
        setup_plugins(self.cfg.PLUGINS)
        env = slurm.export_torch_distributed_env()
        _log.info("Slurm task rank %s of %s, master %s:%s", env["RANK"], env["WORLD_SIZE"], env["MASTER_ADDR"], env["MASTER_PORT"])
        du.init_distributed(self.cfg.LAUNCH.BACKEND)
        try:
            return run_pretraining(self.cfg, resume=self.resume)
        finally:
            du.destroy()

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """A fresh job for the same cfg that resumes from OUTPUT_DIR's last checkpoint."""
        _log.info("preempted or timed out: requeueing; the next start resumes from %s", self.cfg.OUTPUT_DIR)
        return submitit.helpers.DelayedSubmission(PretrainJob(self.cfg, resume="force" if self.resume == "force" else True))


def _resolved_cfg(cfg: CfgNode, opts: slurm.SlurmOptions, nodes: int, procs: int) -> CfgNode:
    """``cfg`` with OUTPUT_DIR absolute and LAUNCH.* recording what was requested."""
    out = cfg.clone()
    out.defrost()
    out.OUTPUT_DIR = str(Path(cfg.OUTPUT_DIR).resolve())
    out.LAUNCH.NODES = nodes
    out.LAUNCH.PROCS_PER_NODE = procs
    s = out.LAUNCH.SLURM
    s.PARTITION, s.ACCOUNT, s.QOS, s.CONSTRAINT = opts.partition, opts.account, opts.qos, opts.constraint
    s.TIME_MINUTES, s.MEM_GB, s.GPUS_PER_NODE, s.CPUS_PER_TASK = opts.time_minutes, opts.mem_gb, opts.gpus_per_node, opts.cpus_per_task
    s.JOB_NAME = opts.job_name
    s.EXTRA = [k if v is True else f"{k}={v}" for k, v in opts.extra]
    validate_cfg(out, world_size=nodes * procs)
    out.freeze()
    return out


def _task_setup(code_dir: Path) -> list[str]:
    """sbatch set-up lines: import from the code snapshot; one intra-op thread per allocated CPU
    (unless OMP_NUM_THREADS is exported already), not one per core of the node."""
    return snapshot.python_path_setup(code_dir) + ["export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}"]


def submit_pretraining(cfg: CfgNode, args: argparse.Namespace):
    """Submit pretraining for ``cfg`` as one Slurm job; returns the submitit job (None on --dry-run).

    Reads from ``args``: the flags of :func:`jobs.slurm.add_slurm_args`, ``nodes`` (else LAUNCH.NODES),
    ``dry_run``, ``wait``, ``resume`` and ``no_resume`` (:func:`avplug.engine.run_dir.resume_from_flags`; a requeued job
    always resumes from its own checkpoints).  A live run holding OUTPUT_DIR, or a resume whose
    config differs, is refused here, before anything is written or queued
    (:func:`avplug.engine.run_dir.prepare_submission`).  With ``--wait`` it follows the job
    and raises :class:`jobs.slurm.SlurmError` if it fails.
    """
    opts = slurm.resolve_slurm_options(cfg, args)
    nodes = getattr(args, "nodes", None) or cfg.LAUNCH.NODES
    procs = slurm.tasks_per_node(cfg, opts)
    run_cfg = _resolved_cfg(cfg, opts, nodes, procs)
    out = Path(run_cfg.OUTPUT_DIR)
    folder = out / "slurm" / "%j"
    world = nodes * procs

    if getattr(args, "dry_run", False):
        code = snapshot.snapshot_dir(out)
        params = slurm.sbatch_parameters(opts, nodes=nodes, ntasks_per_node=procs, setup=_task_setup(code))
        print(run_cfg.dump())
        print(f"# would submit to Slurm: {nodes} node(s) x {procs} task(s) = world size {world}; output in {out}")
        print(f"# code snapshot: {code}")
        print(slurm.sbatch_script(folder, params))
        return None

    prepare_submission(out, run_cfg, resume_from_flags(args))
    code = snapshot.snapshot_code(out)
    params = slurm.sbatch_parameters(opts, nodes=nodes, ntasks_per_node=procs, setup=_task_setup(code))
    write_config(run_cfg, out)
    executor = slurm.make_executor(folder, params, max_requeues=opts.max_requeues)
    with slurm.sbatch_errors(f"the pretraining job ({nodes} node(s) x {procs} task(s))"):
        job = executor.submit(PretrainJob(run_cfg, resume=resume_from_flags(args)))
    print(
        f"submitted Slurm job {job.job_id}: {nodes} node(s) x {procs} task(s) = world size {world}\n"
        f"  output: {out}\n  logs:   {job.paths.folder}\n  code:   {code}",
        flush=True,
    )
    if getattr(args, "wait", False):
        try:
            results = slurm.follow(job)
        except KeyboardInterrupt:
            print(f"\nstopped following; Slurm job {job.job_id} keeps running (scancel {job.job_id} stops it)", flush=True)
            raise
        print(f"Slurm job {job.job_id} finished: {results[0]}", flush=True)
    return job
