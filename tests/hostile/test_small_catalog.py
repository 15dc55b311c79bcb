"""A user's first catalog: 6 titles of real H.264/AAC media trains, reports and evaluates with only the paths given.

Issue 14's bar for small catalogs, run as a user would, every step a real ``tools/*.py`` subprocess on
the shipped recipes (``demo.yaml`` for the CPU, ``eval_esc50.yaml``): nothing but paths, a step count
and the linear protocol (200 epochs of fine-tuning on 5 folds would take half an hour on 2 cores; the
protocol is not an input setting) on the command line.  What makes it work by default: the held-out
split keeps 2 titles (the fraction alone gives 1), the title below k snippets is named and left out of
the epoch, and the ESC-50 recipe takes the demo checkpoint's 16 kHz / 40-mel front end.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

# name: (seconds, video source, size, frame rate, audio source, sample rate, layout, show)
TITLES = {
    "film_a": (30, "testsrc2", "320x180", "25", "sine=frequency=440", 48000, "stereo", ""),
    "film_b": (28, "smptehdbars", "320x240", "30000/1001", "sine=frequency=880", 44100, "mono", ""),
    "film_c": (27, "rgbtestsrc", "256x144", "25", "anoisesrc=color=pink", 48000, "5.1", ""),
    "film_d": (10, "testsrc", "352x288", "30000/1001", "sine=frequency=220", 44100, "stereo", ""),  # < k = 16 snippets
    "ep1": (26, "testsrc", "426x240", "25", "sine=frequency=330", 48000, "stereo", "show"),
    "ep2": (29, "testsrc", "426x240", "25", "sine=frequency=660", 48000, "stereo", "show"),
}


def encode(path: Path, seconds, video, size, rate, audio, sample_rate, layout) -> None:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-t", str(seconds), "-i", f"{video}=size={size}:rate={rate}",
         "-f", "lavfi", "-t", str(seconds), "-i", f"{audio}:sample_rate={sample_rate}",
         "-filter_complex", f"[1:a]aformat=channel_layouts={layout}[a]", "-map", "0:v", "-map", "[a]",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "50", "-c:a", "aac", "-b:a", "96k",
         "-shortest", str(path)],
        check=True,
    )


@pytest.fixture
def tool(repo_root, python_exe, tmp_path):
    """``tool("ingest.py", *args)``: run a tool in ``tmp_path`` as a user would; asserts exit 0 and no traceback."""
    env = {**os.environ, "PYTHONPATH": str(repo_root), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}

    def run(name: str, *args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([python_exe, str(repo_root / "tools" / name), *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0 and "Traceback" not in done.stderr, f"{name} exit {done.returncode}:\n{done.stderr[-3000:]}"
        return done

    return run


@pytest.mark.slow
def test_six_title_catalog_trains_reports_and_evaluates_with_only_paths(tool, tmp_path, esc50_layout):
    (tmp_path / "media").mkdir()
    for name, (seconds, video, size, rate, audio, sample_rate, layout, _) in TITLES.items():
        encode(tmp_path / "media" / f"{name}.mp4", seconds, video, size, rate, audio, sample_rate, layout)
    (tmp_path / "meta.csv").write_text("path,title_id,show_id,genre\n" + "".join(
        f"media/{name}.mp4,{name},{spec[-1]},Drama\n" for name, spec in TITLES.items()))
    esc50 = esc50_layout(tmp_path / "ESC-50-master", seconds=5.0, rate=44100)  # the official clips' length and rate

    ingest = tool("ingest.py", "--cfg", "demo.yaml", "--src", "media", "--meta", "meta.csv", "--out", "catalog", "--no-progress")
    split = json.loads((tmp_path / "catalog" / "split.json").read_text())
    assert "6 titles, 0 rejected; 4 train / 2 held out" in ingest.stdout  # round(0.2 x 6) = 1 would leave the measures none
    assert len(split["heldout"]) == 2 and {"ep1", "ep2"} <= set(split["train"]) | set(split["heldout"])
    assert {"ep1", "ep2"} <= set(split["heldout"]) or not {"ep1", "ep2"} & set(split["heldout"])
    assert "holding out 2 of 6 titles, not round(DATA.HELDOUT_FRACTION 0.2 x 6) = 1" in ingest.stdout + ingest.stderr

    tool("preprocess.py", "--cfg", "demo.yaml", "--catalog", "catalog", "--out", "store", "--no-progress")

    paths = ["DATA.CATALOG_DIR", str(tmp_path / "catalog"), "DATA.STORE_DIR", str(tmp_path / "store"),
             "OUTPUT_DIR", str(tmp_path / "pretrain")]
    tool("launch.py", "--cfg", "demo.yaml", *paths, "SOLVER.MAX_STEPS", "3")
    log = (tmp_path / "pretrain" / "log.txt").read_text()
    assert "1 of 4 titles are skipped, their M_n is below SAMPLER.K = 16" in log and log.count("snippets: film_d") == 1
    checkpoint = tmp_path / "pretrain" / "checkpoints" / "model_0000003.pth"
    assert checkpoint.is_file()

    tool("discrepancy.py", "--weights", str(checkpoint))
    report = json.loads((tmp_path / "pretrain" / "discrepancy" / "discrepancy.json").read_text())
    assert report["num_titles"] == 2 and report["num_snippets"] == sum(
        int(TITLES[t][0] // 1.6) for t in split["heldout"])
    for figure in ("KL(S-||S+)", "KL(S!=||S+)", "KL(S-||S!=)", "gap", "v2a_R@1", "a2v_R@1", "v2a_median_rank"):
        assert np.isfinite(report[figure]), figure
    markdown = (tmp_path / "pretrain" / "discrepancy" / "discrepancy.md").read_text()
    assert "of 2 held-out titles" in markdown and markdown.count("**Too few for a meaningful figure**: 2 titles") == 2

    evaluate = tool("evaluate.py", "--cfg", "eval_esc50.yaml", "--weights", str(checkpoint), "--protocol", "linear",
                    "EVAL.DOWNSTREAM.ROOT", str(esc50))
    results = json.loads((tmp_path / "output" / "eval" / "esc50" / "results.json").read_text())
    assert json.loads(evaluate.stdout.strip().splitlines()[-1])["mean"]["top1"] == results["mean"]["top1"]
    assert results["splits"] == [1, 2, 3, 4, 5] and results["num_test_clips"] == 20
    eval_log = (tmp_path / "output" / "eval" / "esc50" / "log.txt").read_text()
    assert (f"input settings taken from the checkpoint {checkpoint}: DATA.AUDIO_RATE 16000 (recipe: 48000), "
            "INPUT.AUDIO.MEL_BINS 40 (recipe: 96), INPUT.AUDIO.N_FFT 512 (recipe: 2048), INPUT.AUDIO.HOP 256 (recipe: 512)") in eval_log
