"""The pretraining job that submitit runs on every task of a Slurm allocation.

:class:`PretrainJob` is a ``submitit.helpers.Checkpointable``.  On a preemption or time-out
signal submitit calls :meth:`PretrainJob.checkpoint` on rank 0, which returns a *fresh* job
for the same cfg (``resume=True``): the requeued job reloads everything from the last periodic
checkpoint in ``OUTPUT_DIR`` (model, optimizer, sampler position, RNG), not from pickled Python
state.  The engine writes those checkpoints every ``SOLVER.CHECKPOINT_PERIOD`` steps, so a
preempted run loses at most the steps since the last one and otherwise finishes exactly as an
uninterrupted run would.
"""
from __future__ import annotations

import logging
from typing import Any

import submitit
from fvcore.common.config import CfgNode

_log = logging.getLogger("avplug.jobs")


class PretrainJob(submitit.helpers.Checkpointable):
    """One rank of pretraining: Slurm environment -> torch.distributed -> ``run_pretraining``.

    ``cfg`` is the frozen, resolved cfg (OUTPUT_DIR absolute).  ``resume=False`` ignores
    checkpoints already in OUTPUT_DIR on the first start only; a requeued copy always resumes.
    Returns the engine's summary dict on every rank.
    """

    def __init__(self, cfg: CfgNode, *, resume: bool = True) -> None:
        self.cfg = cfg
        self.resume = resume

    def __call__(self) -> dict[str, Any]:
        from avplug.engine import distributed as du
        from avplug.engine.train import run_pretraining
        from avplug.plugins import setup_plugins
        from jobs.slurm import (
            check_code_snapshot,
            export_torch_distributed_env,
            guard_signal_handlers,
        )

        guard_signal_handlers()
        check_code_snapshot()
        setup_plugins(self.cfg.PLUGINS)
        env = export_torch_distributed_env()
        _log.info("Slurm task rank %s of %s, master %s:%s", env["RANK"], env["WORLD_SIZE"], env["MASTER_ADDR"], env["MASTER_PORT"])
        du.init_distributed(self.cfg.LAUNCH.BACKEND)
        try:
            return run_pretraining(self.cfg, resume=self.resume)
        finally:
            du.destroy()

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """A fresh job for the same cfg that resumes from OUTPUT_DIR's last checkpoint."""
        _log.info("preempted or timed out: requeueing; the next start resumes from %s", self.cfg.OUTPUT_DIR)
        return submitit.helpers.DelayedSubmission(PretrainJob(self.cfg, resume=True))
