"""Run pretraining on this machine: one process, or several local ranks (detectron2 ``launch`` style).

A user error (:func:`avplug.errors.user_error_message`) on any rank ends that rank with exit
status 2, its traceback in the rank's log file (``OUTPUT_DIR/log.txt``, ``log.rankN.txt``), and
comes back to the caller of :func:`launch_local` as one :class:`avplug.errors.UserError` with the
lowest failed rank's message; a bug on a rank keeps torch's error with the rank's traceback.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing as mp

from avplug.engine import distributed as du
from avplug.engine.log import log_to_files, setup_logging
from avplug.engine.train import run_pretraining
from avplug.errors import UserError, user_error_message
from avplug.resources import available_cpus


def default_num_procs() -> int:
    """One rank per visible GPU, or one on a CPU-only machine."""
    return max(1, torch.cuda.device_count())


def _worker(local_rank: int, num_procs: int, port: int, cfg, resume: bool, result_file: str) -> None:
    os.environ.update(
        RANK=str(local_rank), LOCAL_RANK=str(local_rank), WORLD_SIZE=str(num_procs),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )
    if not torch.cuda.is_available():
        torch.set_num_threads(cpu_threads(cfg, num_procs))
    setup_logging(cfg.OUTPUT_DIR, local_rank)
    try:
        summary = run_pretraining(cfg, resume=resume)
        if local_rank == 0:
            Path(result_file).write_text(json.dumps(summary))
    except Exception as exc:
        message = user_error_message(exc)
        if message is None:
            raise
        log_to_files(message, exc)
        Path(_user_error_file(result_file, local_rank)).write_text(message)
        raise SystemExit(2) from None  # no traceback for torch to hand to the parent
    finally:
        du.destroy()


def _user_error_file(result_file: str, rank: int) -> str:
    return f"{result_file}.rank{rank}.user_error"


def cpu_threads(cfg, num_procs: int) -> int:
    """Intra-op threads per CPU rank: the usable cores left after one per loader worker, shared by the ranks.

    Oversubscribed OpenMP threads spin against the loader workers: on 2 cores with one worker, two
    intra-op threads trained the demo at 4-15 clips/s and one thread at 50-70 (both under load).
    """
    return max(1, (available_cpus() - num_procs * int(cfg.DATA.NUM_WORKERS)) // num_procs)


def launch_local(cfg, num_procs: int, *, resume: bool = True) -> dict[str, Any]:
    """Pretrain with ``num_procs`` local ranks (gloo on CPU); returns rank 0's summary.

    On a CPU, each rank runs :func:`cpu_threads` intra-op threads (restored afterwards in this process).
    """
    if num_procs <= 1:
        previous = torch.get_num_threads()
        if not torch.cuda.is_available():
            torch.set_num_threads(cpu_threads(cfg, 1))
        try:
            return run_pretraining(cfg, resume=resume)
        finally:
            torch.set_num_threads(previous)
    with tempfile.TemporaryDirectory() as tmp:
        result_file = os.path.join(tmp, "summary.json")
        spawn_log = logging.getLogger("torch.multiprocessing.spawn")
        level = spawn_log.level
        spawn_log.setLevel(logging.ERROR)  # not "Terminating process N via signal SIGTERM" when a rank fails
        try:
            mp.start_processes(_worker, args=(num_procs, du.free_port(), cfg, resume, result_file), nprocs=num_procs, start_method="spawn")
        except (mp.ProcessExitedException, mp.ProcessRaisedException):
            failed = [Path(_user_error_file(result_file, r)) for r in range(num_procs)]
            messages = [p.read_text() for p in failed if p.is_file()]
            if messages:
                raise UserError(messages[0]) from None
            raise
        finally:
            spawn_log.setLevel(level)
        return json.loads(Path(result_file).read_text())
