"""The command-line conventions every avplug tool shares (detectron2 ``default_argument_parser``)."""
from __future__ import annotations

import argparse
import functools
import sys
from typing import Callable, Sequence

from fvcore.common.config import CfgNode

from avplug.config.config import load_config
from avplug.errors import UserError


def default_argument_parser(description: str, *, cfg_required: bool = True) -> argparse.ArgumentParser:
    """A parser with ``--cfg``, repeatable ``--plugin`` and trailing ``KEY VALUE`` overrides."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--cfg", required=cfg_required, help="a YAML recipe: a path, or the name of a shipped one (movie_tv.yaml, demo.yaml)")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE", help="import this plugin module first (repeatable)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help="config overrides, e.g. SAMPLER.K 8")
    return parser


def cfg_from_args(args: argparse.Namespace, *, world_size: int | None = None, extra_opts: Sequence[str] = ()) -> CfgNode:
    """The validated, frozen cfg that ``args`` (from :func:`default_argument_parser`) describe."""
    opts = [o for o in args.opts if o != "--"] + list(extra_opts)
    return load_config(args.cfg, opts, plugins=args.plugin, world_size=world_size)


def exits_on_config_error(prog: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Decorate a tool's ``main``: a :class:`avplug.errors.UserError` (a config error, a
    checkpoint, lock or data error, ...) it raises becomes one ``prog: message`` line on stderr and
    the return value (exit status) 2, instead of a traceback."""

    def decorate(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def guarded(*args, **kwargs) -> int:
            try:
                return main(*args, **kwargs)
            except UserError as exc:
                print(f"{prog}: {exc}", file=sys.stderr)
                return 2

        return guarded

    return decorate
