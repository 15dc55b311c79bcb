"""Atomic checkpoints with a ``last_checkpoint`` pointer (fvcore ``Checkpointer`` style).

A checkpoint is written to a temporary file in the same folder, flushed to disk and renamed over
its final name; ``last_checkpoint`` is then replaced the same way.  A reader that finds the newest
file corrupt or half-written (a crash between the two steps, a truncated copy) logs it and falls
back to the previous checkpoint.  Files load with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

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
    """Save and find training checkpoints in ``directory``; keeps the newest ``keep`` files."""

    def __init__(self, directory: str | os.PathLike, keep: int = 3) -> None:
        self.directory = Path(directory)
        self.keep = keep

    def save(self, step: int, state: dict[str, Any]) -> Path:
        """Write ``state`` as ``model_<step>.pth`` and point ``last_checkpoint`` at it."""
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

    def _prune(self) -> None:
        for old in sorted(p for p in self.directory.glob("model_*.pth") if _NAME.match(p.name))[: -self.keep]:
            old.unlink(missing_ok=True)
