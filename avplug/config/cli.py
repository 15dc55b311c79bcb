"""The command-line conventions every avplug tool shares (detectron2 ``default_argument_parser``)."""
from __future__ import annotations

import argparse
import functools
from typing import Callable, Sequence

from fvcore.common.config import CfgNode

from avplug.config.config import load_config
from avplug.engine.log import report_user_error
from avplug.errors import user_error_message


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


def exits_on_user_error(prog: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Decorate a tool's ``main``: a user error it raises (any :class:`avplug.errors.UserError`, or a
    missing path, permission denied, no space left: see :func:`avplug.errors.user_error_message`)
    becomes one ``prog: message`` line on stderr and the return value (exit status) 2; the traceback
    goes to the log file (:func:`avplug.engine.log.report_user_error`).  Any other exception is a bug
    and propagates with its traceback."""

    def decorate(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def guarded(*args, **kwargs) -> int:
            try:
                return main(*args, **kwargs)
            except Exception as exc:
                message = user_error_message(exc)
                if message is None:
                    raise
                report_user_error(prog, exc, message)
                return 2

        return guarded

    return decorate
