"""What this process may use of the machine, and process pools whose workers die with their parent."""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


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


def process_pool(max_workers: int) -> ProcessPoolExecutor:
    """A process pool (:func:`pool_context`) whose workers die with the process that made it,
    even when that one is killed with SIGKILL (no orphan keeps its memory or its files)."""
    return ProcessPoolExecutor(max_workers=max_workers, mp_context=pool_context(), initializer=die_with_parent, initargs=(os.getpid(),))


def die_with_parent(parent_pid: int) -> None:
    """Make this (pool worker) process die when ``parent_pid``, its parent, does: the kernel's
    parent-death signal on Linux, a thread watching the parent elsewhere; exit at once if the
    parent is already gone."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    else:
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    if os.getppid() != parent_pid:
        os._exit(1)


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(1)
