"""Logging set-up shared by every entry point: console on rank 0, a log file per rank."""
from __future__ import annotations

import logging
import sys
from pathlib import Path


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
