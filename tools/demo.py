#!/usr/bin/env python
"""The main job on the built-in demo corpus: corpus -> ingest -> store -> pretrain -> evaluation -> report.

    tools/demo.py --out output/demo [--procs 2] [--no-eval] [KEY VALUE ...]
"""
from __future__ import annotations

import argparse
import os
import sys

# One OpenMP thread per process unless the user says otherwise: on 2 cores the training process
# and its loader worker then share the machine without spinning threads (the demo trained at 60-76
# clips/s with OMP_NUM_THREADS=1 against 37-47 with torch.set_num_threads(1) alone).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import avplug  # noqa: F401  (pytorchvideo shim first)
from avplug.config.cli import exits_on_user_error
from avplug.demo import run_demo
from avplug.engine.log import setup_logging


@exits_on_user_error("demo.py")
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--out", default="output/demo", help="folder for the corpus, catalog, store, checkpoints and report")
    parser.add_argument("--cfg", default="demo.yaml", help="the recipe (a shipped name or a path)")
    parser.add_argument("--procs", type=int, default=1, help="local ranks for pretraining")
    parser.add_argument("--no-eval", action="store_true", help="stop after pretraining")
    parser.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE")
    args = parser.parse_args(argv)
    setup_logging()
    print(run_demo(args.out, cfg_name=args.cfg, opts=args.opts, procs=args.procs, evaluate=not args.no_eval))
    return 0


if __name__ == "__main__":
    sys.exit(main())
