"""Freezing the code a cluster job runs, so that editing the checkout does not change a queued job.

A snapshot is a plain copy of the project's source files in ``<output_dir>/code/<fingerprint>``:
inside a git checkout, every tracked file plus every untracked file git does not ignore (a new
plugin module that is not committed yet still travels), with their working-tree contents; outside
a checkout (avplug installed as a wheel), the installed ``avplug``, ``registry`` and ``jobs``
packages.  The fingerprint is a hash of the file names and contents, so submitting the same code
twice reuses one snapshot, and a job requeued days later still imports what it was submitted with.

A job uses a snapshot by putting its folder first on ``PYTHONPATH`` (see
:func:`python_path_setup`); the editable install's import hook comes after ``PYTHONPATH``, so the
snapshot's modules win.
"""
from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import avplug

# The packages a job imports from the snapshot when there is no git checkout to copy.
PACKAGES = ("avplug", "registry", "jobs")


def project_root() -> Path:
    """The folder holding the ``avplug`` package (the checkout for an editable install)."""
    return Path(avplug.__file__).resolve().parent.parent


def _git_files(root: Path) -> list[str] | None:
    """Tracked plus untracked-but-not-ignored files under ``root``, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root, check=True, capture_output=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    names = sorted({n for n in out.decode().split("\0") if n})
    # A file deleted in the working tree but still tracked is not part of the code being run.
    return [n for n in names if (root / n).is_file()] or None


def _package_files(root: Path) -> list[str]:
    files = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.append(str(path.relative_to(root)))
    return files


def source_files(root: Path | None = None) -> tuple[Path, list[str]]:
    """``(root, relative file names)`` that make up the code a job runs."""
    root = Path(root) if root is not None else project_root()
    files = _git_files(root)
    if files is None:
        files = _package_files(root)
    if not files:
        raise FileNotFoundError(f"no source files found under {root} to snapshot")
    return root, files


def fingerprint(root: Path, files: Sequence[str]) -> str:
    """A short hash of the names and contents of ``files`` (the snapshot's folder name)."""
    h = hashlib.sha256()
    for name in files:
        h.update(name.encode() + b"\0")
        h.update((root / name).read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:12]


def snapshot_dir(output_dir: str | os.PathLike, root: Path | None = None) -> Path:
    """Where :func:`snapshot_code` puts (or has put) the current code; copies nothing."""
    root, files = source_files(root)
    return Path(output_dir).resolve() / "code" / fingerprint(root, files)


def snapshot_code(output_dir: str | os.PathLike, root: Path | None = None) -> Path:
    """Copy the current code into ``<output_dir>/code/<fingerprint>`` (once) and return that folder.

    The copy is made in a temporary sibling folder and renamed into place, so a half-written
    snapshot is never used.
    """
    root, files = source_files(root)
    target = Path(output_dir).resolve() / "code" / fingerprint(root, files)
    if target.is_dir():
        return target
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    for name in files:
        dest = tmp / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, dest)
    try:
        os.replace(tmp, target)
    except OSError:
        # Another submission with the same code won the race: its copy is identical.
        shutil.rmtree(tmp, ignore_errors=True)
        if not target.is_dir():
            raise
    return target


def python_path_setup(code_dir: str | os.PathLike) -> list[str]:
    """Shell lines that make a job import from ``code_dir`` first.

    ``PYTHONSAFEPATH`` (Python >= 3.11) keeps ``python -m`` from putting the job's working
    directory (the submission directory, often the checkout itself) ahead of the snapshot.
    """
    code = shlex.quote(str(code_dir))
    return [
        f"export PYTHONPATH={code}${{PYTHONPATH:+:$PYTHONPATH}}",
        "export PYTHONSAFEPATH=1",
        f"export AVPLUG_CODE_DIR={code}",
    ]
