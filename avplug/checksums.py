"""Files verified on load: a sha256 sidecar beside each checkpoint, and the errors of a file gone bad.

A file ``model_0000020.pth`` written through :func:`write_sidecar` gets ``model_0000020.pth.sha256``
beside it, one line in ``sha256sum`` format (``<hex digest>  model_0000020.pth``), replaced
atomically (temp file, fsync, rename).  :func:`load_torch_file` re-hashes the file and compares
before it unpickles anything: a flipped byte that the zip CRC of ``torch.save`` misses (a byte in
a stored tensor) is refused as :class:`CorruptFileError` naming the file.  A file without a
sidecar (written before checksums existed, or by another tool) still loads, with a log note.

Everything is read with ``torch.load(weights_only=True)``: no pickled code runs.
"""
from __future__ import annotations

import errno
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import torch

from avplug.errors import UserError

_log = logging.getLogger(__name__)
SUFFIX = ".sha256"
_CHUNK = 1 << 20


class CorruptFileError(UserError, ValueError):
    """A file whose bytes do not match its recorded sha256, or that does not unpickle; names the file."""


class NoSpaceError(UserError, OSError):
    """A write that failed for lack of disk space (ENOSPC / EDQUOT); names the folder and what was not written."""


class _WriteRecorder:
    """A binary file that remembers the OSError of a failed write (``torch.save`` turns it into an
    opaque RuntimeError such as "unexpected pos 704 vs 598")."""

    def __init__(self, file) -> None:
        self.file = file
        self.error: OSError | None = None
        self.sha256 = hashlib.sha256()

    def write(self, data) -> int:
        self.sha256.update(data)
        try:
            return self.file.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.file.flush()


def sidecar_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + SUFFIX)


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write(target: Path, write, before_replace=None) -> str:
    """Call ``write(file)`` on a temp file beside ``target``, fsync, ``before_replace(sha256 hex digest)``,
    rename over ``target``; returns the digest.  The temp file never outlives a failure, and the
    OSError behind a failed write (ENOSPC) is raised as itself.  ``write`` must write sequentially."""
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    recorder = None
    try:
        with open(tmp, "wb") as f:
            recorder = _WriteRecorder(f)
            write(recorder)
            f.flush()
            os.fsync(f.fileno())
        digest = recorder.sha256.hexdigest()
        if before_replace is not None:
            before_replace(digest)
        os.replace(tmp, target)
        return digest
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if recorder is not None and recorder.error is not None and recorder.error is not exc:
            raise recorder.error from exc
        raise


def write_sidecar(path: Path, digest: str) -> Path:
    """Record ``digest`` as the sha256 of ``path`` (atomically) and return the sidecar's path."""
    sidecar = sidecar_path(path)
    atomic_write(sidecar, lambda f: f.write(f"{digest}  {path.name}\n".encode()))
    return sidecar


def recorded_digest(path: str | os.PathLike) -> str | None:
    """The sha256 the sidecar of ``path`` records, or None when there is no sidecar."""
    try:
        text = sidecar_path(path).read_text()
    except FileNotFoundError:
        return None
    return text.split()[0] if text.split() else ""


def verify(path: str | os.PathLike) -> bool:
    """True when ``path`` matches its sidecar, False when it has none; :class:`CorruptFileError` on a mismatch."""
    expected = recorded_digest(path)
    if expected is None:
        return False
    actual = sha256_file(path)
    if actual != expected:
        raise CorruptFileError(f"{path}: corrupt (sha256 {actual[:12]}... but {sidecar_path(path).name} "
                               f"records {expected[:12]}...); restore it or use another checkpoint")
    return True


def load_torch_file(path: str | os.PathLike) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU after :func:`verify`; a file that does not
    unpickle is a :class:`CorruptFileError` naming it (a missing file stays FileNotFoundError)."""
    if not Path(path).is_file():
        raise FileNotFoundError(errno.ENOENT, "no such checkpoint file", str(path))
    if not verify(path):
        _log.info("%s has no %s checksum (written before checksums existed): loaded unverified", path, SUFFIX)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors of every kind: name the file
        raise CorruptFileError(f"{path}: cannot be read as a checkpoint ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
