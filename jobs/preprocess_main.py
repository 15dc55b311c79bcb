"""One shard of preprocessing as a plain process (what the TorchX ``avplug.preprocess`` component runs).

    python -m jobs.preprocess_main --cfg movie_tv.yaml --shard I --num-shards K [--catalog DIR] [--out STORE]

Preprocesses shard I of K (finished titles are skipped, so a restarted replica carries on), then
writes ``STORE/index.json`` if every catalog title is accounted for: the replica that finishes
last merges (see ``jobs.preprocess.preprocess_shard_then_merge``).  Prints the shard summary as
one JSON line.  Exit status 2 on bad usage.
"""
from __future__ import annotations

import json
import sys

import avplug  # noqa: F401  (pytorchvideo shim before anything else)
from avplug.config.cli import cfg_from_args, default_argument_parser, exits_on_user_error


@exits_on_user_error("jobs.preprocess_main")
def main(argv: list[str] | None = None) -> int:
    parser = default_argument_parser("One shard of avplug preprocessing, merging when it is the last.")
    parser.add_argument("--catalog", default=None, help="catalog folder (default: DATA.CATALOG_DIR)")
    parser.add_argument("--out", default=None, help="store folder (default: DATA.STORE_DIR)")
    parser.add_argument("--shard", type=int, required=True, help="shard I, 0 <= I < K")
    parser.add_argument("--num-shards", type=int, required=True, help="number of shards K")
    parser.add_argument("--workers", type=int, default=None, help="local processes, 0 = all cores (default: DATA.PREPROCESS_WORKERS)")
    args = parser.parse_args(argv)
    cfg = cfg_from_args(args)
    catalog = args.catalog or cfg.DATA.CATALOG_DIR
    out = args.out or cfg.DATA.STORE_DIR
    if not catalog or not out:
        print("jobs.preprocess_main: pass --catalog and --out (or set DATA.CATALOG_DIR and DATA.STORE_DIR)", file=sys.stderr)
        return 2
    if not 0 <= args.shard < args.num_shards:
        print(f"jobs.preprocess_main: --shard {args.shard} is not in [0, --num-shards {args.num_shards})", file=sys.stderr)
        return 2
    from jobs.preprocess import preprocess_shard_then_merge

    workers = args.workers if args.workers is not None else cfg.DATA.PREPROCESS_WORKERS
    result = preprocess_shard_then_merge(cfg, catalog, out, args.shard, args.num_shards, workers)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
