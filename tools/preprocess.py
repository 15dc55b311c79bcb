#!/usr/bin/env python
"""Cut every catalog title into aligned snippets and write the snippet store read during training.

    tools/preprocess.py --catalog CATALOG_DIR --out STORE --cfg movie_tv.yaml --workers 16
    tools/preprocess.py --cfg demo.yaml                       # DATA.CATALOG_DIR -> DATA.STORE_DIR
    tools/preprocess.py --cfg movie_tv.yaml --shard 3 --num-shards 64    # one Slurm array task
    tools/preprocess.py --cfg movie_tv.yaml --merge                      # after every shard
    tools/preprocess.py --cfg movie_tv.yaml --slurm --array-size 64 --partition cpu   # all of it on Slurm

Per title: H.264 video at DATA.FPS with short side DATA.STORE_SHORT_SIDE and a keyframe at every
snippet start, mono float16 audio at DATA.AUDIO_RATE, scene starts (PySceneDetect), all under
STORE/titles/.  Finished titles are skipped on a rerun and a broken title is reported in
STORE/errors.jsonl, never fatal; a finished title whose files no longer match the sizes in its
meta.json (sha256 too with --check-hashes) is written again.  --verify only checks a store.  An unsharded run (or --merge) ends by writing STORE/index.json;
--shard I --num-shards K processes a fixed share of the titles (balanced by duration) so that K
tasks plus one --merge build the same store as one local run.  Exit status 0 even when titles
fail (1 if every title failed, or --verify found a damaged title); 2 on bad usage or a full disk
("no space left on STORE": free space and rerun).
"""
from __future__ import annotations

import sys

import avplug  # noqa: F401  (pytorchvideo shim before anything else)
from avplug.config.cli import cfg_from_args, default_argument_parser, exits_on_user_error
from avplug.data.catalog import CatalogError, resolve_workers
from avplug.data.store import StoreSpec, verify_store
from avplug.data.store_writer import build_index, preprocess
from avplug.engine.log import setup_logging


def build_parser():
    parser = default_argument_parser(__doc__.splitlines()[1], cfg_required=False)
    parser.add_argument("--catalog", default=None, help="catalog folder from tools/ingest.py (default: DATA.CATALOG_DIR)")
    parser.add_argument("--out", default=None, help="store folder to write (default: DATA.STORE_DIR)")
    parser.add_argument("--workers", type=int, default=None, help="local processes, 0 = all cores (default: DATA.PREPROCESS_WORKERS)")
    parser.add_argument("--shard", type=int, default=None, help="process only shard I (0-based) of --num-shards")
    parser.add_argument("--num-shards", type=int, default=1, help="number of shards K")
    parser.add_argument("--merge", action="store_true", help="write STORE/index.json from the finished titles (alone: only that)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--verify", action="store_true", help="only check every finished title of --out against its "
                        "checksums (and for finite audio); exit 1 naming each bad title and file")
    parser.add_argument("--check-hashes", action="store_true", help="before skipping a finished title, check its "
                        "files' sha256 (not only their sizes) and rewrite it when damaged")
    from jobs.preprocess import add_preprocess_slurm_args

    add_preprocess_slurm_args(parser)  # --slurm --array-size K --dry-run and the Slurm flags (docs/cluster.md)
    return parser


@exits_on_user_error("preprocess.py")
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    cfg = cfg_from_args(args)
    catalog = args.catalog if args.catalog is not None else cfg.DATA.CATALOG_DIR
    out = args.out if args.out is not None else cfg.DATA.STORE_DIR
    if not out or not (catalog or args.verify):
        raise CatalogError("pass --catalog CATALOG_DIR and --out STORE (or set DATA.CATALOG_DIR and DATA.STORE_DIR)")
    if args.shard is None and args.num_shards != 1:
        raise CatalogError("--num-shards needs --shard I")
    if args.shard is not None and not 0 <= args.shard < args.num_shards:
        raise CatalogError(f"--shard {args.shard} is not in [0, --num-shards {args.num_shards})")
    if args.slurm:
        from jobs.preprocess import submit_preprocess_array

        submit_preprocess_array(cfg, args, catalog_dir=catalog, store_dir=out)
        return 0
    if args.verify:
        return verify(out, catalog, args.workers if args.workers is not None else cfg.DATA.PREPROCESS_WORKERS)
    if args.merge and args.shard is None:
        index = build_index(out, catalog)
        print(f"index of {len(index['titles'])} titles -> {out}")
        return 0
    summary = preprocess(
        catalog,
        out,
        StoreSpec.from_cfg(cfg),
        workers=args.workers if args.workers is not None else cfg.DATA.PREPROCESS_WORKERS,
        shard=args.shard or 0,
        num_shards=args.num_shards,
        merge=True if args.merge else None,
        progress=not args.no_progress,
        check_hashes=args.check_hashes,
    )
    rewritten = f" ({len(summary.rewritten)} of them damaged before)" if summary.rewritten else ""
    busy = f", {len(summary.busy)} left to another run writing them" if summary.busy else ""
    print(
        f"{summary.done} titles written{rewritten}, {summary.skipped} already done{busy}, {len(summary.failed)} failed; "
        f"{summary.source_seconds:.1f} s of source at {summary.source_seconds_per_second:.1f} s/s -> {out}"
    )
    return 1 if summary.failed and not summary.done and not summary.skipped else 0


def verify(store: str, catalog: str, workers: int) -> int:
    """Check every finished title of ``store``; print each bad one and the fix; 1 if any is bad."""
    checked, bad = verify_store(store, resolve_workers(workers))
    for name, problem in bad:
        print(f"bad title {name}: {problem}")
    if not bad:
        print(f"{checked} titles checked, all whole -> {store}")
        return 0
    fix = f"tools/preprocess.py --catalog {catalog or 'CATALOG_DIR'} --out {store} --check-hashes"
    print(f"{len(bad)} of {checked} titles are damaged: rerun {fix} to write them again", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
