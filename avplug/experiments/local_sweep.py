"""A local sweep: the runs one after another in this process (``tools/sweep.py`` without ``--slurm``).

Finished runs (:func:`avplug.experiments.run_stages.is_finished`) and invalid ones are skipped; a
failed run is recorded and the sweep goes on.  On Slurm, ``jobs/sweep_array.py`` runs each run as
an array task instead.
"""
from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from avplug.engine.log import format_duration, log_to_files
from avplug.errors import user_error_message
from avplug.experiments.run_stages import execute_run, is_finished

logger = logging.getLogger("avplug.sweep")


def run_sweep(
    sweep_dir: str | os.PathLike,
    runs: Sequence[Mapping[str, Any]],
    *,
    runner: Callable[..., dict] | None = None,
    **runner_kwargs: Any,
) -> dict[str, str]:
    """Run ``runs`` one after another in this process; returns ``{name: final status}``.

    Finished runs (:func:`is_finished`) and invalid ones are skipped; a run that raises is
    recorded as failed (with its traceback in the log) and the sweep continues.  ``runner(run,
    sweep_dir, **runner_kwargs)`` defaults to :func:`execute_run`.  Progress lines give the run
    index, elapsed time and an ETA from the mean time of the runs done so far.
    """
    runner = runner or execute_run
    todo = [r for r in runs if r.get("status") != "invalid" and not is_finished(sweep_dir, r)]
    final: dict[str, str] = {}
    for run in runs:
        if run.get("status") == "invalid":
            final[run["name"]] = "invalid"
            logger.warning("%s: invalid, not run: %s", run["name"], run.get("error"))
        elif run not in todo:
            final[run["name"]] = "finished"
            logger.info("%s: finished earlier, skipped", run["name"])
    start = time.perf_counter()
    for i, run in enumerate(todo):
        elapsed = time.perf_counter() - start
        eta = f", ETA {format_duration(elapsed / i * (len(todo) - i))}" if i else ""
        logger.info("sweep: run %d/%d %s %s (elapsed %s%s)", i + 1, len(todo), run["name"], run["overrides"], format_duration(elapsed), eta)
        try:
            runner(run, sweep_dir, **runner_kwargs)
            final[run["name"]] = "finished"
        except Exception as exc:  # recorded in run.json by execute_run; the next runs still go
            final[run["name"]] = "failed"
            message = user_error_message(exc)
            if message is None:  # a bug: its traceback on the console too
                logger.error("%s failed: %s\n%s", run["name"], exc, traceback.format_exc())
            else:  # a user error: one line, the traceback in the log file
                logger.error("%s failed: %s", run["name"], message)
                log_to_files(f"the traceback of {run['name']}'s error", exc)
    logger.info("sweep: %d run(s) in %s: %s", len(todo), format_duration(time.perf_counter() - start),
                ", ".join(f"{n} {s}" for n, s in final.items()))
    return final
