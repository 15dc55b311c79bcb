"""Slurm test gating for tests/jobs: ``@pytest.mark.slurm`` tests need a controller that answers.

Without one they are skipped with the reason, except when ``AVPLUG_REQUIRE_SLURM=1`` (CI, where
``scripts/slurm_local.sh start`` brought the two-node cluster up): then a missing Slurm fails them.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REQUIRE_ENV = "AVPLUG_REQUIRE_SLURM"
_STATUS: dict[str, str | None] = {}


def _slurm_problem() -> str | None:
    """None when sbatch works against a controller with two idle-or-busy nodes, else why not."""
    if "problem" not in _STATUS:
        from jobs.slurm import slurm_available

        if not slurm_available():
            _STATUS["problem"] = "no Slurm controller answers here (start one with: sudo scripts/slurm_local.sh start)"
        else:
            out = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %t"], capture_output=True, text=True, timeout=30, check=False)
            usable = [line.split()[0] for line in out.stdout.splitlines() if line.split()[1].rstrip("*") in ("idle", "alloc", "mix", "comp")]
            _STATUS["problem"] = None if len(usable) >= 2 else f"the Slurm cluster needs two usable nodes, sinfo says: {out.stdout.strip()!r}"
    return _STATUS["problem"]


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("slurm") is None:
        return
    problem = _slurm_problem()
    if problem is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {problem}", pytrace=False)
    pytest.skip(problem)


@pytest.fixture
def shared_tmp(tmp_path: Path) -> Path:
    """A folder every Slurm node sees (all nodes of the local cluster are this host)."""
    return tmp_path


def _release(job_id: str, timeout_s: float = 120.0) -> None:
    import time

    from jobs.slurm import TERMINAL_STATES, job_state

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = job_state(job_id)
        if state is None or state.state == "RUNNING" or state.state in TERMINAL_STATES:
            return
        if state.state == "PENDING":  # while still COMPLETING, Slurm would reset the begin time
            subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], capture_output=True, text=True, timeout=30, check=False)
        time.sleep(1.0)
    raise AssertionError(f"requeued Slurm job {job_id} did not start again within {timeout_s:.0f} s")


@pytest.fixture
def release_requeued():
    """``release(job_id)``: wait for a requeued job to start again, without Slurm's requeue delay.

    Slurm holds a requeued batch job for about two minutes (PENDING, reason BeginTime); tests set
    its start time to now once it is pending rather than wait that out.
    """
    return _release


@pytest.fixture
def slurm_cli_env() -> dict[str, str]:
    """Environment for running tools/ as subprocesses: unbuffered, one intra-op thread per rank."""
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env
