"""Errors of the data layer: every message names the file (or store) and the reason."""
from __future__ import annotations

import errno
import os

from avplug.errors import UserError, is_disk_full


class MediaError(UserError, RuntimeError):
    """A media file that cannot be probed or decoded as asked.

    ``path`` is the file as the caller named it, ``reason`` a human-readable explanation (what
    ingest writes to ``rejected.jsonl``).
    """

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # keep (path, reason) across process pools
        return (type(self), (self.path, self.reason))


class StoreError(UserError, LookupError):
    """A snippet store that is missing, incomplete, or asked for a title / snippet it lacks.

    ``store`` is the store's root folder; the message names it and, where relevant, the title.
    """

    def __init__(self, store: str | os.PathLike, reason: str) -> None:
        self.store = str(store)
        self.reason = reason
        super().__init__(f"snippet store {self.store}: {reason}")

    def __reduce__(self):
        return (type(self), (self.store, self.reason))


def write_failure(exc: OSError, folder: str | os.PathLike) -> str:
    """One line for a failed write into ``folder``: ``no space left on FOLDER`` for a full disk
    (or quota), else the system's reason and the file."""
    if is_disk_full(exc):
        return f"no space left on {folder}" + (" (disk quota exceeded)" if exc.errno == errno.EDQUOT else "")
    where = f" ({exc.filename})" if exc.filename else ""
    return f"cannot write into {folder}: {exc.strerror or exc}{where}"
