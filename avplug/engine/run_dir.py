"""One run per OUTPUT_DIR: its lock, the resume decision, and a fresh start that loses nothing.

- **Lock.**  Rank 0 holds ``fcntl.flock`` on ``OUTPUT_DIR/.lock`` for the run's life
  (:class:`OutputDirLock`); the file says who holds it (host, pid, start time).  A second run on the
  same folder is refused with :class:`OutputDirBusyError` naming the holder.  The kernel drops the
  lock when its process dies (``kill -9``, a preempted Slurm task), so a stale lock never blocks a
  rerun or a requeued job; the file itself is never deleted (that would race with a new holder).
  On a file system without ``flock`` the run goes on unlocked, with a warning.
- **Resume modes** (:func:`resume_mode`): ``"auto"`` (``True``, the default) continues the newest
  checkpoint only when its stored cfg matches this run's (:func:`config_changes`, keys in
  :data:`MAY_DIFFER` excepted) and refuses otherwise with :class:`ConfigChangedError` naming every
  changed key and the three choices; ``"force"`` (``--resume``) continues anyway, warning once per
  changed key; ``"never"`` (``False``, ``--no-resume``) starts over.
- **Submission** (:func:`prepare_submission`): a queued job's checks run before it is queued too.
- **Fresh start** (:func:`set_aside_previous_run`): the previous run's checkpoints, metrics, plots,
  TensorBoard events and config move to ``OUTPUT_DIR/previous_runs/<date-time>/`` (logged with the
  path), so a new run never prunes, overwrites or returns another run's checkpoints.
"""
from __future__ import annotations

import fcntl
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import yaml

from avplug.errors import UserError

_log = logging.getLogger("avplug.train")

CHECKPOINT_DIR = "checkpoints"  # the run's checkpoints, under OUTPUT_DIR
LOCK_FILE = ".lock"
PREVIOUS_RUNS = "previous_runs"
RUN_FILES = (CHECKPOINT_DIR, "metrics.jsonl", "tensorboard", "loss_curve.png", "heldout_curve.png", "config.yaml")
# Keys that may change between a run and its resume without changing what it trains.
MAY_DIFFER = ("OUTPUT_DIR", "DATA.NUM_WORKERS", "DATA.PREPROCESS_WORKERS", "SOLVER.LOG_PERIOD", "SOLVER.CHECKPOINT_PERIOD",
              "SOLVER.MAX_EPOCHS", "SOLVER.MAX_STEPS", "EVAL.DISCREPANCY_PERIOD", "EVAL.BOOTSTRAP_REPLICATES", "LAUNCH.")
RESUME_MODES = ("auto", "force", "never")


class OutputDirBusyError(UserError, RuntimeError):
    """Another live run holds OUTPUT_DIR's lock."""


class ConfigChangedError(UserError, ValueError):
    """The newest checkpoint of OUTPUT_DIR was written with another config."""


def resume_mode(resume: bool | str) -> str:
    """``True`` -> ``"auto"``, ``False`` -> ``"never"``; a string must be one of :data:`RESUME_MODES`."""
    if isinstance(resume, bool):
        return "auto" if resume else "never"
    if resume not in RESUME_MODES:
        raise ValueError(f"resume = {resume!r}: expected True, False or one of {', '.join(RESUME_MODES)}")
    return resume


def resume_from_flags(args) -> str:
    """The mode that a tool's ``--resume`` / ``--no-resume`` flags ask for (attributes ``resume``, ``no_resume``)."""
    if getattr(args, "resume", False):
        return "force"
    return "never" if getattr(args, "no_resume", False) else "auto"


class OutputDirLock:
    """``flock`` on ``output_dir/.lock``; :meth:`acquire` refuses a held lock naming its holder."""

    def __init__(self, output_dir: str | os.PathLike) -> None:
        self.path = Path(output_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> OutputDirLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "a process that wrote no details"
            os.close(fd)
            raise OutputDirBusyError(f"OUTPUT_DIR {self.path.parent} is in use by another run ({holder}): wait for it "
                                     f"to end, stop it, or choose another OUTPUT_DIR") from None
        except OSError as exc:  # a file system without flock (Lustre mounted without -o flock, some NFS set-ups)
            _log.warning("%s: cannot lock (%s): runs started on this OUTPUT_DIR at the same time are not kept apart",
                         self.path, exc)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"host {socket.gethostname()}, pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> OutputDirLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def prepare_submission(output_dir: str | os.PathLike, cfg, mode: str) -> None:
    """Before a queued job starts on ``output_dir``: refuse a live run holding it and, like the job
    would, a resume (``"auto"``) whose config differs from the previous run's ``config.yaml``, or
    set the previous run aside (``"never"``), so the submission's ``config.yaml`` replaces nothing."""
    out = Path(output_dir)
    with OutputDirLock(out):
        if mode == "never":
            set_aside_previous_run(out)
        elif mode == "auto" and any((out / CHECKPOINT_DIR).glob("model_*.pth")) and (out / "config.yaml").is_file():
            check_config_unchanged((out / "config.yaml").read_text(), cfg, f"the run in {out} ({out / 'config.yaml'})", mode)


def set_aside_previous_run(output_dir: str | os.PathLike) -> Path | None:
    """Move a previous run's files (:data:`RUN_FILES`) to ``previous_runs/<date-time>/``; its path, or None when there was no run."""
    out = Path(output_dir)
    if not ((out / CHECKPOINT_DIR).is_dir() or (out / "metrics.jsonl").exists()):
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest = out / PREVIOUS_RUNS / stamp
    suffix = 1
    while dest.exists():
        suffix += 1
        dest = out / PREVIOUS_RUNS / f"{stamp}-{suffix}"
    dest.mkdir(parents=True)
    moved = [name for name in RUN_FILES if (out / name).exists()]
    for name in moved:
        os.replace(out / name, dest / name)
    _log.warning("starting over (--no-resume): the previous run's %s moved to %s", ", ".join(moved), dest)
    return dest


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(_flatten(value, f"{prefix}{key}."))
    return flat


def _may_differ(key: str) -> bool:
    return any(key == allowed or (allowed.endswith(".") and key.startswith(allowed)) for allowed in MAY_DIFFER)


def config_changes(stored_yaml: str, cfg) -> list[tuple[str, Any, Any]]:
    """``(key, stored value, new value)`` for every key of ``cfg`` that differs from the stored cfg
    YAML, keys in :data:`MAY_DIFFER` and keys the stored cfg does not know (added by a newer avplug) aside."""
    old = _flatten(yaml.safe_load(stored_yaml) or {})
    new = _flatten(yaml.safe_load(cfg.dump()) or {})
    absent = "(absent)"
    keys = sorted(k for k in old.keys() | new.keys() if k in old and not _may_differ(k))
    return [(k, old[k], new.get(k, absent)) for k in keys if old[k] != new.get(k, absent)]


def describe_changes(changes: list[tuple[str, Any, Any]]) -> str:
    """``"SEED 0 -> 1, SOLVER.BASE_LR 0.002 -> 0.01"``."""
    return ", ".join(f"{key} {old!r} -> {new!r}" for key, old, new in changes)


def check_config_unchanged(stored_yaml: Any, cfg, source: str, mode: str) -> None:
    """Refuse (``"auto"``) or warn about (``"force"``) a resume whose cfg differs from ``stored_yaml``,
    the config of ``source`` (e.g. "the checkpoint <path>")."""
    if not isinstance(stored_yaml, str):
        _log.info("%s stores no config (written by an older avplug): its config is not compared", source)
        return
    changes = config_changes(stored_yaml, cfg)
    if not changes:
        return
    if mode == "force":
        for key, old, new in changes:
            _log.warning("--resume: continuing %s with %s changed (%r -> %r)", source, key, old, new)
        return
    keys = ", ".join(key for key, _, _ in changes)
    raise ConfigChangedError(
        f"{keys} changed since {source} ({describe_changes(changes)}): rerun with --resume to continue "
        f"it with the new values, --no-resume to start over (its files are kept under {PREVIOUS_RUNS}/), or choose another OUTPUT_DIR"
    )
