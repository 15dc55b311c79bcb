"""Hostile faults around tools/preprocess.py and the snippet store, judged by what the user sees:
damaged titles named by --verify and rewritten by a rerun, the reader naming the file it cannot
read, non-finite audio failing its title by name, a full disk as one line that loses nothing,
kill -9 leaving no worker behind, and two runs on one store that do not destroy each other's work."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from avplug.data.catalog import ingest
from avplug.data.errors import StoreError
from avplug.data.store import SnippetStore, StoreSpec
from avplug.data.store_writer import preprocess, try_lock, unlock

REPO = Path(__file__).resolve().parents[2]
TITLES = ["t1", "t2", "t3", "t4"]
SPEC = StoreSpec(snippet_frames=8, fps=5.0, short_side=48, audio_rate=16000)  # demo.yaml's
SAMPLES = SPEC.samples_per_snippet  # 25600


def console_log_to_this_test() -> None:
    """Drop the avplug console handler an earlier in-process tool run left on an earlier test's
    captured stdout (the tool adds a fresh one)."""
    logger = logging.getLogger("avplug")
    for handler in [h for h in logger.handlers if getattr(h, "_avplug_console", False)]:
        logger.removeHandler(handler)


def preprocess_tool(*argv: str) -> int:
    """tools/preprocess.py's main() in this process, with demo.yaml's store spec."""
    console_log_to_this_test()
    spec = importlib.util.spec_from_file_location("preprocess_tool", REPO / "tools" / "preprocess.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(["--cfg", "demo.yaml", "--no-progress", *argv])


def preprocess_process(catalog: Path, store: Path, *extra: str) -> subprocess.Popen:
    """tools/preprocess.py as the user runs it, in its own process."""
    cmd = [sys.executable, str(REPO / "tools" / "preprocess.py"), "--cfg", "demo.yaml", "--no-progress",
           "--catalog", str(catalog), "--out", str(store), *extra]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def last_line(capsys) -> str:
    """The tool's summary: the last line it printed (log lines come before it)."""
    return capsys.readouterr().out.strip().splitlines()[-1]


def digests(store: Path) -> dict[str, str]:
    """sha256 of the video and audio of every title in the store (meta.json holds timings)."""
    files = sorted((store / "titles").glob("*/*.mp4")) + sorted((store / "titles").glob("*/*.npy"))
    return {str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def temp_folders(store: Path) -> list[str]:
    return sorted(p.name for p in (store / ".tmp").glob("*@*")) if (store / ".tmp").exists() else []


def make_catalog(root: Path, tiny_title, seconds: float) -> Path:
    """The catalog of :data:`TITLES`, each a tiny title ``seconds`` long."""
    (root / "src").mkdir()
    for name in TITLES:
        tiny_title(root / "src" / f"{name}.mp4", seconds)
    ingest(str(root / "src"), str(root / "cat"), snippet_seconds=SPEC.snippet_seconds, workers=1, progress=False)
    return root / "cat"


@pytest.fixture(scope="module")
def catalog(tmp_path_factory, tiny_title):
    """Four 4 s titles (two 1.6 s snippets each at demo.yaml's spec)."""
    return make_catalog(tmp_path_factory.mktemp("catalog"), tiny_title, 4.0)


@pytest.fixture(scope="module")
def long_catalog(tmp_path_factory, tiny_title):
    """Four 30 s titles: long enough to catch a run in the middle of a title."""
    return make_catalog(tmp_path_factory.mktemp("long"), tiny_title, 30.0)


@pytest.fixture(scope="module")
def built(catalog, tmp_path_factory):
    """The store of ``catalog``, written once; tests damage copies of it."""
    store = tmp_path_factory.mktemp("built") / "store"
    preprocess(str(catalog), str(store), SPEC, workers=1, progress=False)
    return store


@pytest.fixture
def store(built, tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(built, copy)
    return copy


def test_verify_names_each_damaged_title_and_reruns_rewrite_them(catalog, store, capsys):
    whole = {k: v for k, v in digests(store).items() if k.startswith("titles/t1/")}
    audio2 = store / "titles" / "t2" / "audio.npy"
    audio2.write_bytes(audio2.read_bytes()[:-1000])  # truncated
    video3 = store / "titles" / "t3" / "video.mp4"
    data = bytearray(video3.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
    video3.write_bytes(bytes(data))
    samples = np.load(store / "titles" / "t4" / "audio.npy", mmap_mode="r+")
    samples[SAMPLES + 7] = np.nan  # in snippet 1
    samples.flush()
    del samples

    assert preprocess_tool("--verify", "--out", str(store), "--catalog", str(catalog)) == 1
    out, err = capsys.readouterr()
    assert [line for line in out.splitlines() if not line.startswith("[")] == [
        f"bad title t2: {audio2}: 101528 bytes, meta.json says 102528 (truncated or overwritten)",
        f"bad title t3: {video3}: its sha256 differs from meta.json's (corrupt)",
        f"bad title t4: {store / 'titles' / 't4' / 'audio.npy'}: 1 non-finite audio samples (NaN or inf), "
        f"the first at sample {SAMPLES + 7} (snippet 1)",
    ]
    assert err == f"3 of 4 titles are damaged: rerun tools/preprocess.py --catalog {catalog} --out {store} --check-hashes to write them again\n"

    assert preprocess_tool("--catalog", str(catalog), "--out", str(store), "--workers", "1") == 0
    assert last_line(capsys).startswith("1 titles written (1 of them damaged before), 3 already done, 0 failed")
    assert preprocess_tool("--catalog", str(catalog), "--out", str(store), "--workers", "1", "--check-hashes") == 0
    assert last_line(capsys).startswith("2 titles written (2 of them damaged before), 2 already done, 0 failed")
    assert preprocess_tool("--verify", "--out", str(store)) == 0
    assert last_line(capsys) == f"4 titles checked, all whole -> {store}"
    assert {k: v for k, v in digests(store).items() if k.startswith("titles/t1/")} == whole  # never touched


def test_the_reader_names_the_title_and_file_it_cannot_read(store):
    video = store / "titles" / "t1" / "video.mp4"
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    audio = store / "titles" / "t2" / "audio.npy"
    audio.write_bytes(audio.read_bytes()[:-1000])
    reader = SnippetStore(store)
    with pytest.raises(StoreError, match=rf"title 't1': cannot read snippets \[0, 1\] from {video} \(cannot decode video"):
        reader.read_video("t1", [0, 1])
    with pytest.raises(StoreError, match=rf"title 't2': cannot read {audio} \(truncated or damaged"):
        reader.read_audio("t2", [1])
    assert reader.read_audio("t3", [1]).shape == (1, SAMPLES)  # the others still read


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # 1e6 does not fit a float16
def test_non_finite_source_audio_fails_its_title_by_name(tmp_path, tiny_title, capsys):
    src = tmp_path / "src"
    src.mkdir()
    tiny_title(src / "good.mp4", 4.0)
    tiny_title(src / "nan.mkv", 4.0, audio="if(gt(t\\,2)\\,0/0\\,sin(2*PI*440*t))")  # NaN from 2 s
    tiny_title(src / "huge.mkv", 4.0, audio="1e6*sin(2*PI*440*t)")  # beyond float16: inf in the store
    ingest(str(src), str(tmp_path / "cat"), snippet_seconds=SPEC.snippet_seconds, workers=1, progress=False)
    store = tmp_path / "store"
    assert preprocess_tool("--catalog", str(tmp_path / "cat"), "--out", str(store), "--workers", "1") == 0
    assert last_line(capsys).startswith("1 titles written, 0 already done, 2 failed")
    errors = {e["title_id"]: e for e in map(json.loads, (store / "errors.jsonl").read_text().splitlines())}
    assert sorted(errors) == ["huge", "nan"]
    for title_id, error in errors.items():
        assert error["path"] == str(src / f"{title_id}.mkv")
        assert "non-finite audio samples (NaN or inf)" in error["reason"], error
    assert "the first at sample 32001 (snippet 1)" in errors["nan"]["reason"]  # just after 2 s at 16 kHz
    assert [t.title_id for t in SnippetStore(store).titles] == ["good"]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_full_disk_is_one_line_keeps_finished_titles_and_a_rerun_finishes(catalog, small_tmpfs, workers, capsys):
    disk = small_tmpfs(300)  # room for two titles of about 115 kB
    store = disk / "store"
    assert preprocess_tool("--catalog", str(catalog), "--out", str(store), "--workers", workers) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert err.startswith(f"preprocess.py: snippet store {store}: no space left on {store} while writing title 't")
    assert err.endswith("free space and rerun tools/preprocess.py (finished titles are kept; unfinished ones were removed)\n")
    finished = sorted(os.listdir(store / "titles"))
    assert 1 <= len(finished) < len(TITLES)
    assert temp_folders(store) == []  # nothing half-written left behind
    kept = digests(store)
    assert sorted({k.split("/")[1] for k in kept}) == finished and len(kept) == 2 * len(finished)
    assert preprocess_tool("--verify", "--out", str(store)) == 0  # the finished titles are whole
    capsys.readouterr()

    small_tmpfs.resize(disk, 2048)  # space freed
    assert preprocess_tool("--catalog", str(catalog), "--out", str(store), "--workers", workers) == 0
    assert last_line(capsys).startswith(f"{len(TITLES) - len(finished)} titles written, {len(finished)} already done, 0 failed")
    assert kept.items() <= digests(store).items()  # the titles finished before were kept as they were
    assert preprocess_tool("--verify", "--out", str(store)) == 0
    assert [t.title_id for t in SnippetStore(store).titles] == TITLES


def test_a_disk_that_fills_while_the_video_is_written_leaves_nothing_behind(tmp_path, tiny_title, small_tmpfs):
    noise = "nullsrc=s=64x48:r=10,geq=random(1)*255:random(2)*255:random(3)*255"  # a store video of about 50 kB
    (tmp_path / "src").mkdir()
    tiny_title(tmp_path / "src" / "noise.mp4", 4.0, video=noise)
    ingest(str(tmp_path / "src"), str(tmp_path / "cat"), snippet_seconds=SPEC.snippet_seconds, workers=1, progress=False)
    disk = small_tmpfs(1024)
    store = disk / "store"
    store.mkdir()
    with open(disk / "filler", "wb") as f:  # room for the audio (26 pages) and 4 pages of video
        os.posix_fallocate(f.fileno(), 0, os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize - 30 * 4096)
    with pytest.raises(StoreError, match=f"no space left on {store} while writing title 'noise'") as caught:
        preprocess(str(tmp_path / "cat"), str(store), SPEC, workers=1, progress=False)
    assert caught.value.__cause__.filename.endswith("/video.mp4")  # the encoder's write failed, not the audio's
    assert temp_folders(store) == [] and not (store / "titles").exists()
    (disk / "filler").unlink()
    assert preprocess(str(tmp_path / "cat"), str(store), SPEC, workers=1, progress=False).done == 1


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper has died)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_kill_9_of_preprocess_leaves_no_worker_alive_and_a_rerun_finishes(long_catalog, tmp_path, capsys):
    cat, store = long_catalog, tmp_path / "store"
    run = preprocess_process(cat, store, "--workers", "2")
    deadline = time.time() + 120
    while len(temp_folders(store)) < 2 and run.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    workers = children(run.pid)
    assert len(workers) == 2 and len(temp_folders(store)) == 2, (workers, temp_folders(store), run.poll())
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    deadline = time.time() + 10
    while any(map(alive, workers)) and time.time() < deadline:
        time.sleep(0.05)
    survivors = [p for p in workers if alive(p)]
    for pid in survivors:  # do not leave them running when this fails
        os.kill(pid, signal.SIGKILL)
    assert survivors == []

    finished = len(os.listdir(store / "titles")) if (store / "titles").exists() else 0
    assert finished < len(TITLES)
    assert preprocess_tool("--catalog", str(cat), "--out", str(store), "--workers", "2") == 0
    assert last_line(capsys).startswith(f"{len(TITLES) - finished} titles written, {finished} already done, 0 failed")
    assert temp_folders(store) == [] and os.listdir(store / ".tmp") == []
    assert preprocess_tool("--verify", "--out", str(store)) == 0
    assert [t.title_id for t in SnippetStore(store).titles] == TITLES


def test_a_run_leaves_titles_another_run_is_writing_alone(catalog, tmp_path):
    store = tmp_path / "store"
    live = store / ".tmp" / "t2@otherhost@4242"  # another run's work in progress on t2
    live.mkdir(parents=True)
    (live / "video.mp4").write_bytes(b"half a title")
    dead = store / ".tmp" / "t3@otherhost@4243"  # what a run that died left of t3
    dead.mkdir()
    lock = try_lock(str(store / ".tmp" / "t2.lock"))  # the other run holds t2's lock
    summary = preprocess(str(catalog), str(store), SPEC, workers=1, progress=False)
    assert summary.busy == ["t2"] and summary.done == 3
    assert (live / "video.mp4").read_bytes() == b"half a title"
    assert temp_folders(store) == ["t2@otherhost@4242"]
    assert [t["title_id"] for t in summary.index["titles"]] == ["t1", "t3", "t4"]
    unlock(str(store / ".tmp" / "t2.lock"), lock)  # the other run died
    summary = preprocess(str(catalog), str(store), SPEC, workers=1, progress=False)
    assert (summary.done, summary.skipped, summary.busy) == (1, 3, [])
    assert temp_folders(store) == [] and len(digests(store)) == 2 * len(TITLES)
    assert preprocess_tool("--verify", "--out", str(store)) == 0


def test_a_worker_killed_by_the_system_is_one_line_and_a_rerun_finishes(long_catalog, tmp_path, capsys):
    store = tmp_path / "store"
    run = preprocess_process(long_catalog, store, "--workers", "2")
    deadline = time.time() + 120
    while not temp_folders(store) and run.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.kill(children(run.pid)[0], signal.SIGKILL)  # what the out-of-memory killer does
    out, err = run.communicate(timeout=300)
    assert run.returncode == 2 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == (
        f"preprocess.py: snippet store {store}: a preprocess worker process died (killed by the system: out of memory? "
        "try fewer --workers); rerun tools/preprocess.py to carry on (finished titles are kept)"
    )
    assert preprocess_tool("--catalog", str(long_catalog), "--out", str(store), "--workers", "2") == 0
    assert temp_folders(store) == [] and preprocess_tool("--verify", "--out", str(store)) == 0


def stop_mid_title(run: subprocess.Popen, store: Path) -> str:
    """SIGSTOP ``run`` while it writes a title (its temporary folder exists); returns the title."""
    deadline = time.time() + 120
    while time.time() < deadline and run.poll() is None:
        if temp_folders(store):
            os.kill(run.pid, signal.SIGSTOP)
            if temp_folders(store):
                return temp_folders(store)[0].split("@")[0]
            os.kill(run.pid, signal.SIGCONT)  # stopped between two titles: try again
        time.sleep(0.005)
    raise AssertionError(f"the run never started a title: {run.communicate()}")


def test_a_second_run_leaves_the_title_a_live_run_is_writing_alone(long_catalog, tmp_path, capsys):
    store = tmp_path / "store"
    first = preprocess_process(long_catalog, store, "--workers", "1")
    try:
        title = stop_mid_title(first, store)
        live = temp_folders(store)
        second = preprocess_process(long_catalog, store, "--workers", "1")
        out, err = second.communicate(timeout=300)
        assert second.returncode == 0, err
        assert out.strip().splitlines()[-1].startswith(
            f"{len(TITLES) - 1} titles written, 0 already done, 1 left to another run writing them, 0 failed"
        ), out
        assert temp_folders(store) == live  # the first run's work in progress is untouched
        assert not (store / "titles" / title).exists()
    finally:
        os.kill(first.pid, signal.SIGCONT)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert out.strip().splitlines()[-1].startswith(f"1 titles written, {len(TITLES) - 1} already done, 0 failed"), out
    assert temp_folders(store) == [] and not (store / "errors.jsonl").read_text()
    assert preprocess_tool("--verify", "--out", str(store)) == 0
    index = json.loads((store / "index.json").read_text())
    assert [t["title_id"] for t in index["titles"]] == TITLES  # the run that finished last merged all
