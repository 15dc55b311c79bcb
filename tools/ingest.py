#!/usr/bin/env python
"""Catalog a collection of long-form titles: probe every file, reject the unusable, split off held-out titles.

    tools/ingest.py --src /data/movies --out /data/catalog --cfg movie_tv.yaml
    tools/ingest.py --src files.txt --meta meta.csv --out catalog --heldout-fraction 0.1 --workers 16
    tools/ingest.py --cfg demo.yaml          # DATA.SOURCE, DATA.META -> DATA.CATALOG_DIR
    tools/ingest.py --src DIR --out OUT DATA.GENRES "['Drama','Comedy']" DATA.MAX_TITLES 1600

Writes OUT/catalog.jsonl (usable titles), OUT/rejected.jsonl (file + reason: every other file
under --src, FIFOs, links and unreadable files included; none is opened unless regular) and OUT/split.json
({"train": [...], "heldout": [...], "excluded": [...]}).  --src is a folder (scanned recursively
for media files) or a text file with one path per line; --meta is a csv with the columns
path,title_id,show_id,genre whose rows, when given, are the titles (files of --src without a row
are skipped).  The snippet length is DATA.SNIPPET_FRAMES / DATA.FPS; genre
subsampling of the training titles follows DATA.GENRES, DATA.GENRE_WEIGHTS and DATA.MAX_TITLES.
Paths may use any iopath backend.  Exit status 0 even when files are rejected; 2 on bad usage.
"""
from __future__ import annotations

import sys

import avplug  # noqa: F401  (pytorchvideo shim before anything else)
from avplug.config.cli import cfg_from_args, default_argument_parser, exits_on_user_error
from avplug.data.catalog import CatalogError, ingest
from avplug.engine.log import setup_logging


def build_parser():
    parser = default_argument_parser(__doc__.splitlines()[1], cfg_required=False)
    parser.add_argument("--src", default=None, help="folder or list file of source media (default: DATA.SOURCE); "
                        "may be empty with --meta, whose rows then name the titles")
    parser.add_argument("--meta", default=None, help="meta.csv with path,title_id,show_id,genre (default: DATA.META unless --src is given)")
    parser.add_argument("--out", default=None, help="catalog folder to write (default: DATA.CATALOG_DIR)")
    parser.add_argument("--heldout-fraction", type=float, default=None, help="fraction of titles held out (default: DATA.HELDOUT_FRACTION)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the held-out split and genre subsampling (default: SEED)")
    parser.add_argument("--workers", type=int, default=None, help="probing processes, 0 = all cores (default: DATA.PREPROCESS_WORKERS)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


@exits_on_user_error("ingest.py")
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    cfg = cfg_from_args(args)
    d = cfg.DATA
    src = args.src if args.src is not None else d.SOURCE
    out = args.out if args.out is not None else d.CATALOG_DIR
    if not out:
        raise CatalogError("no output folder: pass --out CATALOG_DIR or set DATA.CATALOG_DIR")
    result = ingest(
        src,
        out,
        snippet_seconds=d.SNIPPET_SECONDS,
        # DATA.META describes DATA.SOURCE: it applies only when --src does not replace that
        meta=args.meta if args.meta is not None else ("" if args.src is not None else d.META),
        heldout_fraction=args.heldout_fraction if args.heldout_fraction is not None else d.HELDOUT_FRACTION,
        seed=args.seed if args.seed is not None else cfg.SEED,
        workers=args.workers if args.workers is not None else d.PREPROCESS_WORKERS,
        genres=list(d.GENRES),
        genre_weights=[float(w) for w in d.GENRE_WEIGHTS],
        max_titles=d.MAX_TITLES,
        progress=not args.no_progress,
    )
    print(f"{result.summary()} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
