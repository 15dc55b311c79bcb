"""Atomic, checksummed checkpoints with a ``last_checkpoint`` pointer (fvcore ``Checkpointer`` style).

A checkpoint is written to a temporary file in the same folder and hashed as it is written,
flushed to disk, its sha256 recorded in a ``model_<step>.pth.sha256`` sidecar, and renamed over
its final name; ``last_checkpoint`` is then replaced the same way (:mod:`avplug.checksums`).  A
reader that finds the newest file corrupt (a flipped byte, a truncated copy, a crash between the
steps) logs it, naming the file, and falls back to the previous checkpoint; files written before
checksums existed load with a note.  Files load with ``torch.load(weights_only=True)``.

A write that fails leaves nothing of itself behind (no temp file, no sidecar, the pointer and the
previous checkpoint untouched); a full disk is a :class:`avplug.checksums.NoSpaceError` naming
the folder, the step not written and the checkpoint a rerun resumes from once space is freed.

Named checkpointables (fvcore style): ``Checkpointer(dir, model=m, optimizer=o, sampler=s)``
saves ``{"model": m.state_dict(), ...}`` plus the extra entries given to :meth:`Checkpointer.save`,
and :meth:`Checkpointer.restore` hands each object its entry back through ``load_state_dict``, so
every object checks what it is given (the sampler refuses another catalog or batch size).
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Sequence

import torch

from avplug.checksums import CorruptFileError, NoSpaceError, atomic_write, load_torch_file, sidecar_path, write_sidecar
from avplug.errors import is_disk_full

_log = logging.getLogger(__name__)
_NAME = re.compile(r"^model_(\d{7})\.pth$")
_TEMP = re.compile(r"^\.(model_\d{7}\.pth|last_checkpoint)(\.sha256)?\.tmp\d+$")


class Checkpointer:
    """Save and find training checkpoints in ``directory``; keeps the newest ``keep`` files.

    ``checkpointables``: named objects with ``state_dict()`` / ``load_state_dict(state)``.
    """

    def __init__(self, directory: str | os.PathLike, keep: int = 3, **checkpointables: Any) -> None:
        self.directory = Path(directory)
        self.keep = keep
        self.checkpointables = checkpointables

    def save(self, step: int, extra: dict[str, Any] | None = None) -> Path:
        """Write the checkpointables' states and ``extra`` as ``model_<step>.pth``; point ``last_checkpoint`` at it."""
        state = {**{name: obj.state_dict() for name, obj in self.checkpointables.items()}, **(extra or {})}
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"model_{step:07d}.pth"
        previous = self.latest_path()
        existed = path.exists()
        try:
            atomic_write(path, lambda f: torch.save(state, f), before_replace=lambda digest: write_sidecar(path, digest))
            atomic_write(self.directory / "last_checkpoint", lambda f: f.write(path.name.encode()))
        except BaseException as exc:
            if not existed:  # the pointer still names the previous checkpoint: leave nothing of this one
                path.unlink(missing_ok=True)
                sidecar_path(path).unlink(missing_ok=True)
            if is_disk_full(exc):
                kept = f"the previous checkpoint {previous.name} is intact" if previous and previous != path else "no earlier checkpoint"
                raise NoSpaceError(f"no space left on {self.directory} (checkpoint step {step} not written; {kept}): "
                                   "free space and rerun, it resumes from the last checkpoint") from exc
            raise
        self._prune()
        return path

    def remove_stale_temp_files(self) -> list[Path]:
        """Delete temp files that a killed writer left (call only while no other process writes here)."""
        stale = [p for p in self.directory.glob(".*.tmp*") if _TEMP.match(p.name)] if self.directory.is_dir() else []
        for p in stale:
            p.unlink(missing_ok=True)
            _log.info("removed %s, left by a killed checkpoint write", p)
        return stale

    def candidates(self) -> list[Path]:
        """Checkpoint files, newest first (the ``last_checkpoint`` target leads)."""
        files = sorted((p for p in self.directory.glob("model_*.pth") if _NAME.match(p.name)), reverse=True)
        pointer = self.directory / "last_checkpoint"
        if pointer.is_file():
            named = self.directory / pointer.read_text().strip()
            if named in files:
                files.remove(named)
                files.insert(0, named)
        return files

    def latest_path(self) -> Path | None:
        found = self.candidates()
        return found[0] if found else None

    def load_latest(self) -> tuple[Path, dict[str, Any]] | None:
        """``(path, state)`` of the newest readable checkpoint, or None when there is none."""
        for path in self.candidates():
            try:
                state = load_torch_file(path)
            except (CorruptFileError, OSError) as exc:  # corrupt or half-written: fall back to the previous one
                _log.warning("checkpoint %s is unusable (%s); trying the previous one", path, exc)
                continue
            if not isinstance(state, dict) or "model" not in state:
                _log.warning("checkpoint %s holds no model state; trying the previous one", path)
                continue
            return path, state
        return None

    def restore(self, state: dict[str, Any], path: str | os.PathLike = "the checkpoint", optional: Sequence[str] = ()) -> None:
        """Hand every checkpointable its entry of ``state``; a missing entry not in ``optional`` is an error naming ``path``."""
        missing = [name for name in self.checkpointables if name not in state and name not in optional]
        if missing:
            raise KeyError(f"{path} holds no state for {', '.join(missing)}")
        for name, obj in self.checkpointables.items():
            if name in state:
                obj.load_state_dict(state[name])

    def _prune(self) -> None:
        for old in sorted(p for p in self.directory.glob("model_*.pth") if _NAME.match(p.name))[: -self.keep]:
            old.unlink(missing_ok=True)
            sidecar_path(old).unlink(missing_ok=True)
