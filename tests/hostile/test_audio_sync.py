"""A spliced source as a user brings it: ingest names it and its jump, preprocess lays its parts end to end.

The two MPEG-TS parts are made by the ffmpeg CLI and concatenated byte by byte (``cat a.ts
b.ts``), so both clocks restart at the join.  Judged by what the user sees: exit codes, no
traceback, the title and its jump in the ingest log, the whole source in the store.
(Sample-exact sync of spliced sources is measured in ``tests/data/test_audio_sync.py``.)
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg CLI")

PART_S = 2.0


def ts_part(path, seconds: float) -> None:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=64x36:rate=25:duration={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
         "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-f", "mpegts", str(path)],
        check=True,
    )  # fmt: skip


def test_a_spliced_source_is_named_in_the_ingest_log_and_stored_whole(tmp_path, python_exe, repo_root):
    src = tmp_path / "src"
    src.mkdir()
    ts_part(tmp_path / "a.ts", PART_S)
    (src / "spliced.ts").write_bytes((tmp_path / "a.ts").read_bytes() * 2)  # the second copy restarts the clock
    ts_part(src / "plain.ts", 2 * PART_S)

    def run(tool, *args):
        proc = subprocess.run(
            [python_exe, str(repo_root / "tools" / tool), "--cfg", "demo.yaml", "--no-progress", *args],
            capture_output=True, text=True, cwd=repo_root, timeout=300, check=False,
        )  # fmt: skip
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        return proc.stdout + proc.stderr

    log = run("ingest.py", "--src", str(src), "--out", str(tmp_path / "cat"), "--workers", "1", "DATA.HELDOUT_FRACTION", "0.0")
    assert "timestamp jumps in 1 of 2 titles" in log
    jump = re.search(r"timestamp jump of ([0-9.]+) s in spliced \(.*spliced\.ts\)", log)
    assert jump and PART_S <= float(jump.group(1)) <= PART_S + 0.05, log  # the part's length (+ its audio padding)
    assert " in plain " not in log
    catalog = {e["title_id"]: e for e in map(json.loads, (tmp_path / "cat" / "catalog.jsonl").read_text().splitlines())}
    assert catalog["plain"]["max_timestamp_jump_s"] < 0.01
    assert catalog["spliced"]["duration_s"] == pytest.approx(2 * PART_S, abs=0.05)  # both parts, not the header's 2 s
    run("preprocess.py", "--catalog", str(tmp_path / "cat"), "--out", str(tmp_path / "store"), "--workers", "1",
        "DATA.STORE_SHORT_SIDE", "36")  # fmt: skip
    meta = json.loads((tmp_path / "store" / "titles" / "spliced" / "meta.json").read_text())
    assert meta["clock_jumps"] == 1 and meta["num_snippets"] == catalog["plain"]["num_snippets"]
    assert meta["audio_coverage"] > 0.99
