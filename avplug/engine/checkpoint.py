"""Atomic checkpoints with a ``last_checkpoint`` pointer (fvcore ``Checkpointer`` style).

A checkpoint is written to a temporary file in the same folder, flushed to disk and renamed over
its final name; ``last_checkpoint`` is then replaced the same way.  A reader that finds the newest
file corrupt or half-written (a crash between the two steps, a truncated copy) logs it and falls
back to the previous checkpoint.  Files load with ``torch.load(weights_only=True)``.

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

_log = logging.getLogger(__name__)
_NAME = re.compile(r"^model_(\d{7})\.pth$")


def _atomic_write_bytes(target: Path, write) -> None:
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)


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
        _atomic_write_bytes(path, lambda f: torch.save(state, f))
        _atomic_write_bytes(self.directory / "last_checkpoint", lambda f: f.write(path.name.encode()))
        self._prune()
        return path

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
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # corrupt or half-written: fall back to the previous one
                _log.warning("checkpoint %s is unreadable (%s); trying the previous one", path, exc)
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
