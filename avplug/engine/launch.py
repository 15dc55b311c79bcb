"""Run pretraining on this machine: one process, or several local ranks (detectron2 ``launch`` style)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing as mp

from avplug.engine import distributed as du
from avplug.engine.train import run_pretraining
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
    try:
        summary = run_pretraining(cfg, resume=resume)
        if local_rank == 0:
            Path(result_file).write_text(json.dumps(summary))
    finally:
        du.destroy()


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
        mp.start_processes(_worker, args=(num_procs, du.free_port(), cfg, resume, result_file), nprocs=num_procs, start_method="spawn")
        return json.loads(Path(result_file).read_text())
