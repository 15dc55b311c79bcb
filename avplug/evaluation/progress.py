"""Progress lines of long loops: done/total, rate and ETA, with durations written as ``H:MM:SS``."""
from __future__ import annotations

import logging
import time

from avplug.engine.log import format_duration


class Progress:
    """Log ``what: done/total unit, rate unit/s, ETA`` to ``logger`` at most every ``every_s``
    seconds, and when the total is reached if ``log_end``."""

    def __init__(self, logger: logging.Logger, what: str, total: int, unit: str, every_s: float = 30.0, *,
                 log_end: bool = True) -> None:
        self.logger, self.what, self.total, self.unit, self.every_s, self.log_end = logger, what, total, unit, every_s, log_end
        self.start = self.last = time.perf_counter()
        self.done = 0

    def update(self, n: int) -> None:
        """Count ``n`` more done; log a line when one is due."""
        self.done += n
        now = time.perf_counter()
        if now - self.last >= self.every_s or (self.log_end and self.done >= self.total):
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            self.logger.info("%s: %d/%d %s, %.1f %s/s, ETA %s", self.what, self.done, self.total, self.unit, rate, self.unit,
                             format_duration(eta))
