#!/usr/bin/env python
"""Write the built-in synthetic demo corpus: movies and TV shows, broken files, downstream stand-ins.

    tools/make_demo_corpus.py --out /tmp/demo                       # DATA.DEMO sizes, seed DATA.DEMO.SEED
    tools/make_demo_corpus.py --out /tmp/demo --seed 3 --movies 2 --shows 1 --episodes 2 --title-seconds 8
    tools/make_demo_corpus.py --cfg demo.yaml                        # into the folder of DATA.META
    tools/make_demo_corpus.py --out /tmp/demo --no-downstream --no-broken

Writes OUT/meta.csv (path,title_id,show_id,genre), OUT/titles/ (.mp4), OUT/scenes.json (true scene
boundaries), OUT/broken.json, OUT/manifest.json (every generation decision) and the stand-ins
OUT/ucf101/, OUT/hmdb51/, OUT/esc50/ in their official layouts (see docs/demo_corpus.md).
OUT must be empty, new, or a previous demo corpus (replaced).  Sizes default to the cfg's
DATA.DEMO keys; flags override them.  Exit status 2 on bad usage.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import avplug  # noqa: F401  (pytorchvideo shim before anything else)
from avplug.config.cli import cfg_from_args, default_argument_parser, exits_on_user_error
from avplug.data.demo import generate_demo_corpus


def build_parser():
    parser = default_argument_parser(__doc__.splitlines()[1], cfg_required=False)
    parser.add_argument("--out", default=None, help="output folder (default: the folder of DATA.META)")
    parser.add_argument("--seed", type=int, default=None, help="generation seed (default: DATA.DEMO.SEED)")
    parser.add_argument("--movies", type=int, default=None, help="number of movies (default: DATA.DEMO.NUM_MOVIES)")
    parser.add_argument("--shows", type=int, default=None, help="number of TV shows (default: DATA.DEMO.NUM_SHOWS)")
    parser.add_argument("--episodes", type=int, default=None, help="episodes per show (default: DATA.DEMO.EPISODES_PER_SHOW)")
    parser.add_argument("--title-seconds", type=float, default=None, help="length of every title (default: DATA.DEMO.TITLE_SECONDS)")
    parser.add_argument("--no-downstream", action="store_true", help="skip the UCF101/HMDB51/ESC-50 stand-ins")
    parser.add_argument("--no-broken", action="store_true", help="skip the broken titles")
    parser.add_argument("--workers", type=int, default=None, help="rendering processes (default: all usable cores)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _folder_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


@exits_on_user_error("make_demo_corpus.py")
def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    cfg = cfg_from_args(args)
    demo = cfg.DATA.DEMO
    out = args.out if args.out is not None else (str(Path(cfg.DATA.META).parent) if cfg.DATA.META else "")
    if not out:
        print("make_demo_corpus.py: no output folder: pass --out DIR or a cfg with DATA.META", file=sys.stderr)
        return 2

    def pick(flag, key):
        return flag if flag is not None else key

    start = time.perf_counter()
    try:
        corpus = generate_demo_corpus(
            out,
            seed=pick(args.seed, demo.SEED),
            num_movies=pick(args.movies, demo.NUM_MOVIES),
            num_shows=pick(args.shows, demo.NUM_SHOWS),
            episodes_per_show=pick(args.episodes, demo.EPISODES_PER_SHOW),
            title_seconds=pick(args.title_seconds, demo.TITLE_SECONDS),
            downstream=not args.no_downstream,
            broken=not args.no_broken,
            workers=args.workers,
            progress=not args.no_progress,
        )
    except (ValueError, FileExistsError) as exc:
        print(f"make_demo_corpus.py: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    size = _folder_size(corpus.root)
    print(f"demo corpus: {len(corpus.titles)} titles listed in {corpus.meta_csv}"
          + (f", stand-ins in {corpus.ucf101_root}, {corpus.hmdb51_root}, {corpus.esc50_root}" if corpus.ucf101_root else "")
          + f"; {size / 1e6:.1f} MB in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
