#!/usr/bin/env python
"""Print the minibatches a sampling policy gives each rank, one JSON object per line.

    tools/inspect_sampler.py --cfg movie_tv.yaml --synthetic-titles 500 --world-size 8 --batches 2
    tools/inspect_sampler.py --cfg demo.yaml --rank 0 --stats SAMPLER.K 8 SAMPLER.WINDOW 16
    tools/inspect_sampler.py --cfg my.yaml --plugin my_samplers --stats --quiet

Each line is ``{"epoch": e, "batch": i, "rank": r, "items": [[title_id, snippet_index], ...]}``;
``--stats`` ends with ``{"stats": {...}, "sampler": {...}}`` (see avplug.samplers.sampler_stats).
Titles come from the train split of the cfg's store, or from a synthetic catalog.
"""
from __future__ import annotations

import json
import sys

import avplug  # noqa: F401  (pytorchvideo shim before anything else)
from avplug.config.cli import cfg_from_args, default_argument_parser, exits_on_user_error


def build_parser():
    parser = default_argument_parser(__doc__.splitlines()[1])
    parser.add_argument("--world-size", type=int, default=1, help="number of ranks W")
    parser.add_argument("--rank", type=int, default=None, help="print only this rank's batches (default: every rank)")
    parser.add_argument("--batches", type=int, default=4, help="first N batches of the epoch (0: the whole epoch)")
    parser.add_argument("--epoch", type=int, default=0, help="epoch to inspect")
    parser.add_argument("--stats", action="store_true", help="end with summary statistics over the global batches")
    parser.add_argument("--quiet", action="store_true", help="with --stats, print only the summary")
    parser.add_argument("--synthetic-titles", type=int, default=0, metavar="N",
                        help="use a synthetic catalog of N titles (avplug.samplers.synthetic_titles) instead of the store")
    return parser


@exits_on_user_error("inspect_sampler.py")
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.world_size < 1 or (args.rank is not None and not 0 <= args.rank < args.world_size):
        print(f"inspect_sampler.py: rank {args.rank} is not in a world of size {args.world_size}", file=sys.stderr)
        return 2
    cfg = cfg_from_args(args, world_size=args.world_size)
    from avplug.samplers import (
        build_sampler,
        load_titles_for,
        rank_batches,
        sampler_stats,
    )

    try:
        titles = load_titles_for(cfg, synthetic=args.synthetic_titles)
    except (LookupError, OSError, ValueError) as exc:  # a missing or incomplete store names itself
        print(f"inspect_sampler.py: cannot read the train titles ({exc}); or use --synthetic-titles N", file=sys.stderr)
        return 2
    try:
        sampler = build_sampler(cfg, titles, world_size=args.world_size, rank=0)
    except ValueError as exc:
        print(f"inspect_sampler.py: {exc}", file=sys.stderr)
        return 2
    ranks = range(args.world_size) if args.rank is None else [args.rank]
    seen = []
    for index, per_rank in rank_batches(cfg, titles, world_size=args.world_size, epoch=args.epoch, num_batches=args.batches):
        if args.stats:
            seen.append(per_rank)
        if not (args.stats and args.quiet):
            for r in ranks:
                print(json.dumps({"epoch": args.epoch, "batch": index, "rank": r, "items": per_rank[r]}))
    if args.stats:
        about = {
            "name": cfg.SAMPLER.NAME,
            "description": sampler.describe() if hasattr(sampler, "describe") else type(sampler).__name__,
            "k": cfg.SAMPLER.K,
            "batch_size": cfg.SOLVER.BATCH_SIZE,
            "world_size": args.world_size,
            "batches_per_epoch": len(sampler),
            "titles": len(titles),
        }
        print(json.dumps({"stats": sampler_stats(seen, titles), "sampler": about}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
