"""Downstream evaluation as a plain process (what the TorchX ``avplug.evaluate`` component runs).

    python -m jobs.evaluate_main --cfg eval_ucf101.yaml --weights W --splits 1 2 3 [--split-index I] [KEY VALUE ...]

With ``--split-index I`` it evaluates only split number I of ``--splits`` (0-based: one replica
per split) and then aggregates if every split has its result, so the replica that finishes last
writes ``OUTPUT_DIR/results.json`` and ``results.md``.  Without it, every split runs here in turn.
Fine-tuning resumes from a split's last epoch checkpoint, so a restarted replica carries on.
Prints the outcome as one JSON line.  Exit status 2 on bad usage.
"""
from __future__ import annotations

import json
import sys

import avplug  # noqa: F401  (pytorchvideo shim before anything else)
from avplug.config.cli import cfg_from_args, default_argument_parser, exits_on_user_error


@exits_on_user_error("jobs.evaluate_main")
def main(argv: list[str] | None = None) -> int:
    parser = default_argument_parser("avplug downstream evaluation: one split (a replica) or all of them.")
    parser.add_argument("--weights", required=True, help="pretraining checkpoint or exported encoders; 'none' for random init")
    parser.add_argument("--splits", type=int, nargs="+", default=None, help="official splits (default: EVAL.DOWNSTREAM.SPLITS, else all)")
    parser.add_argument("--split-index", type=int, default=None, help="evaluate only --splits[I] (0-based), then aggregate if all are done")
    args = parser.parse_args(argv)
    cfg = cfg_from_args(args)
    from avplug.config import write_config
    from avplug.engine.log import setup_logging
    from avplug.evaluation.downstream_protocols import run_evaluation, splits_of
    from jobs.evaluate import evaluate_split_then_aggregate

    splits = args.splits or splits_of(cfg)
    setup_logging(cfg.OUTPUT_DIR)
    write_config(cfg, cfg.OUTPUT_DIR)
    if args.split_index is None:
        print(json.dumps(run_evaluation(cfg, args.weights, splits)), flush=True)
        return 0
    if not 0 <= args.split_index < len(splits):
        print(f"jobs.evaluate_main: --split-index {args.split_index} is not an index of --splits {splits}", file=sys.stderr)
        return 2
    result = evaluate_split_then_aggregate(cfg, args.weights, splits[args.split_index], splits)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
