"""Logging set-up shared by every entry point (console on rank 0, a log file per rank), and the H:MM:SS durations of progress lines."""
from __future__ import annotations

import logging
import math
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


def format_duration(seconds: float) -> str:
    """``3725.4`` -> ``"1:02:05"`` (rounded to the second, negative as 0); ``"?"`` when not finite."""
    if not math.isfinite(seconds):
        return "?"
    s = max(0, round(seconds))
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}"
