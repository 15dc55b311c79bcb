"""jobs.slurm against a real Slurm cluster (scripts/slurm_local.sh: nodes n1, n2, one CPU each).

These use small jobs that need no data: torch.distributed across the two nodes, and a
checkpointable job that counts to a file, preempted mid-run.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import pytest
import submitit

from avplug.config import get_cfg
from jobs import slurm
from jobs.diagnostics import all_reduce_check

pytestmark = pytest.mark.slurm

# The job classes below live in this test module, which the job cannot import: ship them by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _executor(folder: Path, *, nodes: int, max_requeues: int = 3):
    cfg = get_cfg()
    opts = slurm.resolve_slurm_options(cfg, argparse.Namespace(gpus_per_node=0, cpus_per_task=1, time=60, job_name="avplug-test"))
    params = slurm.sbatch_parameters(opts, nodes=nodes, ntasks_per_node=1, setup=["export OMP_NUM_THREADS=1"])
    return slurm.make_executor(folder / "%j", params, max_requeues=max_requeues)


def test_torch_distributed_all_reduce_across_two_nodes(shared_tmp):
    job = _executor(shared_tmp, nodes=2).submit(all_reduce_check, "gloo")
    results = slurm.follow(job, timeout_s=120, stdout=sys.stderr)
    assert sorted(r["rank"] for r in results) == [0, 1]
    assert {r["node"] for r in results} == {"n1", "n2"}  # one task on each Slurm node
    assert all(r["world_size"] == 2 and r["sum"] == 3.0 and r["backend"] == "gloo" for r in results)
    assert len({r["master"] for r in results}) == 1
    assert slurm.job_state(job.job_id).state == "COMPLETED"


class CountToFile(submitit.helpers.Checkpointable):
    """Counts to ``total`` in lock-step over all ranks, rank 0 persisting the count after each step.

    Resumes from the file, never from pickled state: ``checkpoint`` returns a fresh copy.
    """

    def __init__(self, folder: str, total: int, step_s: float) -> None:
        self.folder, self.total, self.step_s = folder, total, step_s

    def __call__(self) -> int:
        import torch
        import torch.distributed as dist

        from avplug.engine import distributed as du

        slurm.guard_signal_handlers()
        slurm.export_torch_distributed_env()
        info = du.init_distributed("gloo")
        count_file = Path(self.folder) / "count"
        count = int(count_file.read_text()) if count_file.exists() else 0
        if info.rank == 0:
            with open(Path(self.folder) / "starts", "a") as f:
                f.write(f"{count}\n")
        while count < self.total:
            tick = torch.ones(1)
            dist.all_reduce(tick)
            time.sleep(self.step_s)
            count += int(tick.item()) // info.world_size
            if info.rank == 0:
                tmp = count_file.with_suffix(".tmp")
                tmp.write_text(str(count))
                os.replace(tmp, count_file)
        du.barrier()
        du.destroy()
        return count

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        return submitit.helpers.DelayedSubmission(CountToFile(self.folder, self.total, self.step_s))


def _wait_until(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _count(folder: Path) -> int:
    try:
        return int((folder / "count").read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def test_preempted_job_requeues_and_resumes_from_disk(shared_tmp, release_requeued):
    work = shared_tmp / "work"
    work.mkdir()
    job = _executor(shared_tmp / "slurm", nodes=2).submit(CountToFile(str(work), total=30, step_s=0.3))
    _wait_until(lambda: _count(work) >= 5, 120, "the job to count to 5")
    # What Slurm sends before preempting (and before the time limit): submitit's signal, USR2.
    subprocess.run(["scancel", f"--signal={submitit.JobEnvironment.USR_SIG}", job.job_id], check=True)
    state = _wait_until(
        lambda: (s := slurm.job_state(job.job_id)) and s.restarts >= 1 and s.state in ("PENDING", "RUNNING", "COMPLETED") and s,
        90, "the job to requeue itself",
    )
    if state.state == "PENDING":
        release_requeued(job.job_id)
    results = slurm.follow(job, timeout_s=120, stdout=sys.stderr)
    assert results == [30, 30]
    starts = [int(x) for x in (work / "starts").read_text().split()]
    assert len(starts) == 2 and starts[0] == 0 and 5 <= starts[1] < 30  # second start resumed from the file
    final = slurm.job_state(job.job_id)
    assert (final.state, final.restarts) == ("COMPLETED", 1)


def test_follow_raises_with_the_log_when_the_job_fails(shared_tmp):
    job = _executor(shared_tmp, nodes=1).submit(int, "not a number")
    with pytest.raises(slurm.SlurmError, match="invalid literal"):
        slurm.follow(job, timeout_s=120, stdout=sys.stderr)
