"""Hostile input to tools/ingest.py, judged by what the user sees: every file under --src ends up in
catalog.jsonl or rejected.jsonl with its reason (nothing opened but regular files, so a FIFO never
hangs it), the summary line counts the rejections by kind, and a full disk is one line."""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 120  # a FIFO that is opened blocks forever: the run must end long before this


def run_ingest(src: Path, out: Path, *extra: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    cmd = [*prefix, sys.executable, str(REPO / "tools" / "ingest.py"), "--src", str(src), "--out", str(out),
           "--cfg", "demo.yaml", "--no-progress", *extra]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, env=env, cwd=REPO)


def ingest_tool(src: Path, out: Path, *extra: str) -> int:
    """tools/ingest.py's main() in this process (faster than a subprocess where nothing needs one),
    its console log on this test's stdout."""
    logger = logging.getLogger("avplug")
    for handler in [h for h in logger.handlers if getattr(h, "_avplug_console", False)]:
        logger.removeHandler(handler)
    spec = importlib.util.spec_from_file_location("ingest_tool", REPO / "tools" / "ingest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(["--src", str(src), "--out", str(out), "--cfg", "demo.yaml", "--no-progress", "--workers", "1", *extra])


def rejected_reasons(out: Path) -> dict[str, str]:
    return {json.loads(line)["path"]: json.loads(line)["reason"] for line in (out / "rejected.jsonl").read_text().splitlines()}


def cataloged(out: Path) -> list[str]:
    return [json.loads(line)["path"] for line in (out / "catalog.jsonl").read_text().splitlines()]


@pytest.fixture
def hostile_src(tmp_path, tiny_title):
    """A source folder holding two titles and one of every other kind of entry."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    tiny_title(src / "good.mp4", 2.0)
    tiny_title(src / "sub" / "good2.mkv", 2.0)
    (src / "song.m4a").write_bytes(b"\0" * 100)
    (src / "notes.txt").write_text("not media\n")
    (src / ".DS_Store").write_bytes(b"\0")
    (src / ".cache").mkdir()
    (src / ".cache" / "x.mp4").write_bytes(b"\0")
    os.mkfifo(src / "pipe.mp4")  # opening it would block until someone writes
    os.mkfifo(src / "pipe")
    os.symlink("gone.mp4", src / "broken.mp4")
    os.symlink("self.mp4", src / "self.mp4")
    os.symlink("..", src / "sub" / "up")
    os.symlink("sub", src / "alias")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(src / "sock"))
    yield src
    sock.close()


def test_every_file_under_src_is_cataloged_or_rejected_with_its_reason(hostile_src, tmp_path):
    out = tmp_path / "cat"
    done = run_ingest(hostile_src, out, "--workers", "2")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert cataloged(out) == [str(hostile_src / "good.mp4"), str(hostile_src / "sub" / "good2.mkv")]
    expected = {
        "song.m4a": "not a media file extension (.m4a): not probed",
        "notes.txt": "not a media file extension (.txt): not probed",
        ".DS_Store": "hidden file (not probed)",
        ".cache": "hidden folder (not scanned)",
        "pipe.mp4": "is a FIFO (named pipe), not a regular file (never opened)",
        "pipe": "is a FIFO (named pipe), not a regular file (never opened)",
        "sock": "is a socket, not a regular file (never opened)",
        "broken.mp4": "broken symlink: points to gone.mp4, which does not exist",
        "self.mp4": "symlink loop: the link never reaches a file",
        "sub/up": f"symlink loop: points to {hostile_src}, a folder that contains it (not followed)",
        "alias": f"a link to a folder scanned already (as {hostile_src / 'sub'})",
    }
    assert rejected_reasons(out) == {str(hostile_src / name): reason for name, reason in expected.items()}
    summary = done.stdout.strip().splitlines()[-1]
    assert summary.startswith(
        "2 titles, 11 rejected (2 is a FIFO, 2 not a media file extension, 2 symlink loop, 1 a link to a folder "
        "scanned already, 1 broken symlink, 1 hidden file, 1 hidden folder, 1 is a socket); "
    ), summary


@pytest.mark.timeout(TIMEOUT_S)
def test_a_fifo_named_by_a_list_file_or_meta_csv_is_rejected_once_never_opened(tmp_path, tiny_title):
    src = tmp_path / "src"
    src.mkdir()
    tiny_title(src / "good.mp4", 2.0)
    os.mkfifo(src / "pipe.mp4")
    fifo = {"path": str(src / "pipe.mp4"), "reason": "is a FIFO (named pipe), not a regular file (never opened)"}
    (tmp_path / "files.txt").write_text("src/good.mp4\nsrc/pipe.mp4\n")
    out = tmp_path / "cat"
    assert ingest_tool(tmp_path / "files.txt", out) == 0
    assert cataloged(out) == [str(src / "good.mp4")]
    assert [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()] == [fifo]
    (tmp_path / "meta.csv").write_text("path,title_id\nsrc/pipe.mp4,p\nsrc/good.mp4,g\n")
    assert ingest_tool(src, out, "--meta", str(tmp_path / "meta.csv")) == 0  # the row is probed, the scan defers to it
    assert cataloged(out) == [str(src / "good.mp4")]
    assert [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()] == [fifo]


def without_file_permission_override() -> tuple[str, ...]:
    """A command prefix under which chmod 000 really means unreadable: as root, drop the two
    capabilities that let root read any file (setpriv); nothing otherwise."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a file unreadable to this test")
    prefix = (setpriv, "--bounding-set", "-dac_override,-dac_read_search")
    if subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
        pytest.skip("setpriv cannot drop capabilities here: cannot make a file unreadable as root")
    return prefix


def test_unreadable_files_and_folders_are_rejected_naming_them(tmp_path, tiny_title):
    src = tmp_path / "src"
    (src / "locked").mkdir(parents=True)
    tiny_title(src / "good.mp4", 2.0)
    shutil.copy(src / "good.mp4", src / "secret.mp4")
    shutil.copy(src / "good.mp4", src / "locked" / "inside.mp4")
    os.chmod(src / "secret.mp4", 0)
    os.chmod(src / "locked", 0)
    out = tmp_path / "cat"
    try:
        done = run_ingest(src, out, "--workers", "1", prefix=without_file_permission_override())
    finally:
        os.chmod(src / "locked", 0o755)
    assert done.returncode == 0, done.stderr
    assert cataloged(out) == [str(src / "good.mp4")]
    assert rejected_reasons(out) == {
        str(src / "secret.mp4"): "cannot read the file (Permission denied)",
        str(src / "locked"): "cannot list the folder (Permission denied): its files are not cataloged",
    }
    assert "1 cannot list the folder, 1 cannot read the file" in done.stdout


def test_a_full_disk_is_one_line_and_a_rerun_after_freeing_space_works(tmp_path, tiny_title, small_tmpfs, capsys):
    src = tmp_path / "src"
    src.mkdir()
    tiny_title(src / "good.mp4", 2.0)
    disk = small_tmpfs(64)
    out = disk / "cat"
    out.mkdir()
    filler = small_tmpfs.fill(disk)
    assert ingest_tool(src, out) == 2
    assert capsys.readouterr().err == (
        f"ingest.py: catalog {out}: no space left on {out}: free space (or fix the folder) and rerun tools/ingest.py\n"
    )
    assert sorted(os.listdir(out)) == []  # no half-written file, no temp file
    filler.unlink()
    assert ingest_tool(src, out) == 0
    assert cataloged(out) == [str(src / "good.mp4")]
