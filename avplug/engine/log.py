"""Logging set-up shared by every entry point (console on rank 0, a log file per rank), how entry
points report a user error, and the H:MM:SS durations of progress lines.

A user error (:func:`avplug.errors.user_error_message`) is reported as one ``prog: message`` line
on stderr; its traceback goes to the log files set up so far (``OUTPUT_DIR/log.txt``, or
``log.rankN.txt`` on rank N) and, with the environment variable ``AVPLUG_DEBUG=1``, to stderr too.
"""
from __future__ import annotations

import logging
import math
import os
import sys
import traceback
from pathlib import Path

DEBUG_ENV = "AVPLUG_DEBUG"


def setup_logging(output_dir: str | Path | None = None, rank: int = 0, level: int = logging.INFO, *,
                  stream=None) -> logging.Logger:
    """Configure the ``avplug`` logger once per process (repeated calls only add a missing file).

    The console handler writes to ``stream`` (default ``sys.stdout``; tools that print JSON on
    stdout pass ``sys.stderr``)."""
    logger = logging.getLogger("avplug")
    logger.setLevel(level)
    logger.propagate = False
    fmt = logging.Formatter(f"[%(asctime)s r{rank} %(name)s] %(message)s", datefmt="%H:%M:%S")
    if rank == 0 and not any(getattr(h, "_avplug_console", False) for h in logger.handlers):
        console = logging.StreamHandler(stream or sys.stdout)
        console.setFormatter(fmt)
        console._avplug_console = True
        logger.addHandler(console)
    if output_dir is not None:
        path = Path(output_dir) / ("log.txt" if rank == 0 else f"log.rank{rank}.txt")
        if not any(getattr(h, "baseFilename", None) == str(path.resolve()) for h in logger.handlers):
            path.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(path)
            handler.setFormatter(fmt)
            logger.addHandler(handler)
    return logger


def format_duration(seconds: float) -> str:
    """``3725.4`` -> ``"1:02:05"`` (rounded to the second, negative as 0); ``"?"`` when not finite."""
    if not math.isfinite(seconds):
        return "?"
    s = max(0, round(seconds))
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}"


def log_to_files(message: str, exc: BaseException | None = None) -> list[str]:
    """Write ``message`` and ``exc``'s traceback to the ``avplug`` logger's files only (not the
    console); returns the files written."""
    logger = logging.getLogger("avplug")
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, message, (), exc_info)
    files = [h for h in logger.handlers if isinstance(h, logging.FileHandler)]
    for handler in files:
        handler.handle(record)
    return [h.baseFilename for h in files]


def report_user_error(prog: str, exc: BaseException, message: str) -> None:
    """Print ``prog: message`` as one line on stderr; the traceback goes to the log files (and to
    stderr before that line when ``AVPLUG_DEBUG=1``)."""
    log_to_files(f"{prog}: {message}", exc)
    if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    print(f"{prog}: {message}", file=sys.stderr, flush=True)
