#!/usr/bin/env python
"""Evaluate pretrained encoders on a downstream dataset: fine-tuning or a linear probe, per official split.

    tools/evaluate.py --cfg eval_ucf101.yaml --weights output/movie_tv/checkpoints/model_0001000.pth \\
        EVAL.DOWNSTREAM.ROOT /data/UCF101
    tools/evaluate.py --cfg eval_esc50.yaml --weights encoders.pth --protocol linear --splits 1 2
    tools/evaluate.py --cfg eval_hmdb51.yaml --weights none        # randomly initialized baseline
    tools/evaluate.py --cfg eval_ucf101.yaml --weights CKPT --slurm --partition gpu   # array task per split

Writes ``OUTPUT_DIR/split<N>/`` (checkpoints, metrics.jsonl, result.json) for every split, then
``OUTPUT_DIR/results.json`` (per split, mean, std) and ``OUTPUT_DIR/results.md``, and prints the
Markdown table.  A rerun resumes unfinished fine-tuning from its last checkpoint.  The input
settings (audio sample rate and log-mel, pixel normalization, video crop size) are the checkpoint's
unless set in the recipe file itself or on the command line; the log names the keys taken from it.
"""
from __future__ import annotations

import json
import logging
import sys

import avplug  # noqa: F401  (pytorchvideo shim before anything else)
from avplug.config.cli import cfg_from_args, default_argument_parser, exits_on_user_error
from avplug.engine.log import setup_logging
from avplug.evaluation.checkpoint_inputs import describe_inherited, explicit_keys, inherit_checkpoint_inputs
from avplug.models.export import check_weights_file
from jobs import slurm
from jobs.evaluate import submit_evaluation


def build_parser():
    parser = default_argument_parser(__doc__.splitlines()[1])
    parser.add_argument(
        "--weights", required=True,
        help="pretraining checkpoint or exported encoders file; 'none' for a randomly initialized backbone",
    )
    parser.add_argument("--protocol", choices=("finetune", "linear"), default=None, help="EVAL.DOWNSTREAM.PROTOCOL")
    parser.add_argument(
        "--splits", nargs="+", default=None, metavar="N",
        help="official splits/folds to run (default: EVAL.DOWNSTREAM.SPLITS, else all); KEY VALUE overrides may follow",
    )
    parser.add_argument("--out", default=None, help="output folder (OUTPUT_DIR)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--slurm", action="store_true", help="one Slurm array task per split/fold, then an aggregation job")
    parser.add_argument("--dry-run", action="store_true", help="with --slurm: print the sbatch scripts, submit nothing")
    slurm.add_slurm_args(parser)
    return parser


def parse_args(argv=None):
    """Parse ``argv``; ``--splits 1 2 KEY VALUE ...`` keeps the integers and hands the rest to the overrides."""
    args = build_parser().parse_args(argv)
    if args.splits is not None:
        tokens = list(args.splits)
        count = next((i for i, t in enumerate(tokens) if not t.isdigit()), len(tokens))
        if count == 0:
            build_parser().error(f"--splits needs split numbers, got {tokens[0]!r}")
        args.splits = [int(t) for t in tokens[:count]]
        args.opts = tokens[count:] + list(args.opts)
    return args


@exits_on_user_error("evaluate.py")
def main(argv=None) -> int:
    args = parse_args(argv)
    extra = []
    if args.protocol:
        extra += ["EVAL.DOWNSTREAM.PROTOCOL", args.protocol]
    if args.out:
        extra += ["OUTPUT_DIR", args.out]
    cfg = cfg_from_args(args, extra_opts=extra)
    if args.weights.lower() not in ("none", ""):
        check_weights_file(args.weights, "--weights")
    explicit = explicit_keys(args.cfg, [o for o in args.opts if o != "--"])
    cfg, inherited = inherit_checkpoint_inputs(cfg, args.weights, explicit)
    if args.slurm:
        print(describe_inherited(args.weights, inherited))
        submit_evaluation(cfg, args, weights=args.weights, splits=args.splits)
        return 0
    from avplug.config import write_config
    from avplug.evaluation.downstream_protocols import run_evaluation
    from avplug.evaluation.downstream_statistics import results_markdown

    setup_logging(cfg.OUTPUT_DIR)
    logging.getLogger("avplug.evaluate").info(describe_inherited(args.weights, inherited))
    write_config(cfg, cfg.OUTPUT_DIR)
    summary = run_evaluation(cfg, args.weights, args.splits, device=args.device)
    print(results_markdown(summary))
    print(json.dumps({"results": f"{cfg.OUTPUT_DIR}/results.json", "mean": summary["mean"], "std": summary["std"],
                      "mean_ci95": summary["mean_ci95"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
