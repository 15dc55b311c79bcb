"""What this process may use of the machine."""
from __future__ import annotations

import multiprocessing
import os


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by the Slurm allocation.

    Clusters that do not bind tasks to their CPUs (``TaskPlugin=task/none``) leave every core in
    the affinity mask; ``SLURM_CPUS_PER_TASK`` then still says how many this task was given, so
    two tasks sharing a node do not both size their pools and threads for the whole node.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    allocated = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if allocated.isdigit() and int(allocated) > 0:
        cpus = min(cpus, int(allocated))
    return max(1, cpus)


def pool_context():
    """The start method of avplug's process pools (ingest, preprocess, demo corpus): fork where
    available (fast, and workers inherit the imported modules), else the platform's default."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else None)
