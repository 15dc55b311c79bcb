"""One rank of pretraining under torchrun (what the TorchX ``avplug.pretrain`` component runs).

    python -m torch.distributed.run --nnodes 1 --nproc_per_node 2 -m jobs.pretrain_main --cfg demo.yaml [KEY VALUE ...]

Reads the torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), builds
the cfg for that world size, and runs ``avplug.engine.train.run_pretraining``, resuming from
OUTPUT_DIR's last checkpoint when its config matches (so a restarted or requeued app carries on);
``--resume`` continues it despite config changes, ``--no-resume`` starts over (:mod:`avplug.engine.run_dir`).
Rank 0 prints the summary as one JSON line on stdout.  Exit status 2 on a bad cfg.
"""
from __future__ import annotations

import json
import os
import sys

import avplug  # noqa: F401  (pytorchvideo shim before anything else)
from avplug.config.cli import cfg_from_args, default_argument_parser, exits_on_user_error
from avplug.models.export import check_weights_file


@exits_on_user_error("jobs.pretrain_main")
def main(argv: list[str] | None = None) -> int:
    parser = default_argument_parser("One rank of avplug pretraining under torchrun / TorchX.")
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true", help="continue OUTPUT_DIR's checkpoint even if its config differs")
    resume.add_argument("--no-resume", action="store_true", help="start over; the previous run moves to OUTPUT_DIR/previous_runs/")
    args = parser.parse_args(argv)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cfg = cfg_from_args(args, world_size=world)
    if cfg.MODEL.WEIGHTS:
        check_weights_file(cfg.MODEL.WEIGHTS, "MODEL.WEIGHTS")
    from avplug.engine import distributed as du
    from avplug.engine.run_dir import resume_from_flags
    from avplug.engine.train import run_pretraining

    try:
        summary = run_pretraining(cfg, resume=resume_from_flags(args))
    finally:
        du.destroy()
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
