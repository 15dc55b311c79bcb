"""Paths and small text files on any iopath backend: a local path or a URI (``scheme://...``).

The catalog and the snippet store both write their JSON files through :func:`write_text`, which
is atomic on a local disk (temp file + rename), so a crash never leaves a half-written file, and
a failed write (a full disk) removes its temp file before the error goes on.
"""
from __future__ import annotations

import contextlib
import os

from iopath.common.file_io import g_pathmgr


def is_remote(path: str) -> bool:
    """Whether ``path`` is a URI served by an iopath handler rather than a local path."""
    return "://" in path


def join_path(root: str, name: str) -> str:
    """``root/name``: with ``/`` for a URI, :func:`os.path.join` for a local path."""
    return root.rstrip("/") + "/" + name if is_remote(root) else os.path.join(root, name)


def write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path``: atomically (temp file + rename) on a local disk."""
    if is_remote(path):
        with g_pathmgr.open(path, "w") as f:
            f.write(text)
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def read_text(path: str) -> str:
    """The whole text of ``path`` (any iopath backend)."""
    with g_pathmgr.open(path, "r") as f:
        return f.read()
