"""The only place avplug touches submitit's private API; everything else uses its public one.

Checked against submitit 1.5.x (1.5.4 is pinned in constraints.txt; setup.cfg asks for >= 1.5).
avplug needs two things submitit keeps private:

* :func:`sbatch_script`: the sbatch script a ``SlurmExecutor`` would submit, without submitting
  (``--dry-run``).  It calls ``submitit.slurm.slurm._make_sbatch_string`` with the command line
  ``SlurmExecutor._submitit_command_str`` builds (``python -u -m submitit.core._submit FOLDER``).
  If a release renames either, ``--dry-run`` fails with an ImportError or TypeError, or prints a
  script whose command no longer runs; real submissions go through ``SlurmExecutor`` and are
  unaffected.
* :func:`preemption_signal`: the signal submitit's job handler listens on
  (``JobEnvironment._usr_sig()``: ``SIG`` + ``USR_SIG``, SIGUSR2 unless
  ``SUBMITIT_PREEMPT_SIGNAL`` says otherwise).  If it goes, every job fails at start in
  ``jobs.slurm.guard_signal_handlers`` with an AttributeError, before training begins.

``tests/jobs/test_slurm.py`` exercises both (the sbatch script's lines and the signal guard).
"""
from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

import submitit
from submitit.slurm import slurm as submitit_slurm

# The module submitit's sbatch script runs on every task (SlurmExecutor._submitit_command_str).
SUBMIT_MODULE = "submitit.core._submit"


def sbatch_script(python: str, folder: str | os.PathLike, params: dict[str, Any], *, array_size: int | None = None) -> str:
    """The sbatch script submitit would write for ``SlurmExecutor`` parameters ``params``.

    ``python`` is the (shell-quoted) interpreter, ``folder`` the executor's folder (``%j`` for the
    job id), ``array_size`` the number of tasks of a job array (None: a single job).
    """
    folder = Path(folder).expanduser().absolute()
    command = " ".join([python, f"-u -m {SUBMIT_MODULE}", shlex.quote(str(folder))])
    extra = {"map_count": array_size} if array_size else {}
    return submitit_slurm._make_sbatch_string(command=command, folder=folder, **params, **extra)


def preemption_signal() -> int:
    """The signal (a ``signal.Signals``) on which submitit's handler checkpoints and requeues a job."""
    return submitit.JobEnvironment._usr_sig()
