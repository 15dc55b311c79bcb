"""A quick check that torch.distributed works across the nodes of a Slurm allocation.

Run it before a long pretraining job on a new cluster or partition (see docs/cluster.md)::

    python -m jobs.diagnostics --nodes 2 --gpus-per-node 0 --cpus-per-task 1 --partition debug

Every task joins one process group and all-reduces its ``rank + 1``; every task must see
``world_size * (world_size + 1) / 2``.
"""
from __future__ import annotations

import argparse
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any


def all_reduce_check(backend: str = "auto") -> dict[str, Any]:
    """In one task of a submitit job: join the world, all-reduce rank + 1, report what was seen."""
    import torch
    import torch.distributed as dist

    from avplug.engine import distributed as du
    from jobs.slurm import export_torch_distributed_env

    env = export_torch_distributed_env()
    info = du.init_distributed(backend)
    try:
        value = torch.tensor([float(info.rank + 1)], device=info.device)
        if info.world_size > 1:
            dist.all_reduce(value)
        import os

        return {
            "rank": info.rank, "world_size": info.world_size, "sum": float(value.item()),
            "host": socket.gethostname(), "node": os.environ.get("SLURMD_NODENAME", ""),
            "master": f"{env['MASTER_ADDR']}:{env['MASTER_PORT']}",
            "backend": dist.get_backend() if dist.is_initialized() else "none",
        }
    finally:
        du.destroy()


def main(argv: list[str] | None = None) -> int:
    from avplug.config import get_cfg
    from jobs import slurm

    parser = argparse.ArgumentParser(description="Check torch.distributed across Slurm nodes (all_reduce).")
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--folder", default=None, help="submitit folder for the job's logs (default: a temporary one)")
    parser.add_argument("--backend", default="auto", choices=("auto", "gloo", "nccl"))
    slurm.add_slurm_args(parser)
    args = parser.parse_args(argv)
    cfg = get_cfg()
    opts = slurm.resolve_slurm_options(cfg, args)
    folder = Path(args.folder or tempfile.mkdtemp(prefix="avplug-check-")) / "%j"
    procs = max(1, opts.gpus_per_node)
    params = slurm.sbatch_parameters(opts, nodes=args.nodes, ntasks_per_node=procs)
    job = slurm.make_executor(folder, params, max_requeues=0).submit(all_reduce_check, args.backend)
    print(f"submitted {job.job_id}; logs in {job.paths.folder}", flush=True)
    results = slurm.follow(job)
    world = args.nodes * procs
    expected = world * (world + 1) / 2
    for r in results:
        print(r)
    ok = all(r["sum"] == expected and r["world_size"] == world for r in results)
    print(f"all_reduce over {world} ranks: {'OK' if ok else 'WRONG'} (expected {expected})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
