"""tools/evaluate.py and tools/discrepancy.py as users run them (subprocesses) on tiny real data."""
from __future__ import annotations

import fractions
import importlib.util
import json
import subprocess

import av
import numpy as np
import pytest
import torch


def run_tool(python_exe, repo_root, tool, *args):
    """The tool as a user runs it: a subprocess."""
    return subprocess.run(
        [python_exe, str(repo_root / "tools" / tool), *args], capture_output=True, text=True, cwd=repo_root, timeout=600, check=False
    )


def tool_main(repo_root, tool):
    """The tool's ``main(argv)``, imported from its file (in-process: no interpreter start-up)."""
    spec = importlib.util.spec_from_file_location(f"avplug_tool_{tool[:-3]}", repo_root / "tools" / tool)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def save_checkpoint(path, opts):
    from avplug.config import load_config
    from avplug.models import build_model

    cfg = load_config("movie_tv.yaml", opts)
    torch.manual_seed(0)
    torch.save({"model": build_model(cfg).state_dict(), "cfg": cfg.dump(), "step": 7}, path)
    return path


def test_evaluate_tool_linear_probe(repo_root, tiny_ucf101, tiny_opts, tmp_path, capsys):
    weights = save_checkpoint(tmp_path / "model.pth", tiny_opts)
    out = tmp_path / "eval"
    code = tool_main(repo_root, "evaluate.py")([
        "--cfg", "eval_ucf101.yaml", "--weights", str(weights), "--protocol", "linear", "--out", str(out),
        "--splits", "1", *tiny_opts, "EVAL.DOWNSTREAM.ROOT", str(tiny_ucf101),  # overrides may follow --splits
    ])
    stdout = capsys.readouterr().out
    assert code == 0
    assert "| split | test clips | top-1 (%) | 95% interval |" in stdout and "| mean ± std | 4 | 100.00 ± 0.00 |" in stdout
    summary = json.loads((out / "results.json").read_text())
    assert summary["dataset"] == "UCF101" and summary["protocol"] == "linear" and summary["splits"] == [1]
    assert summary["mean"]["top1"] == 1.0 and summary["weights"] == str(weights)  # red vs blue clips, 4 test clips
    assert summary["per_split"]["1"]["top1_ci95"] == pytest.approx([0.5101, 1.0], abs=1e-4) and summary["chance"] == 0.5
    assert (out / "results.md").is_file() and (out / "config.yaml").is_file()
    assert (out / "split1" / "result.json").is_file()


def test_evaluate_tool_reports_bad_input(python_exe, repo_root, tmp_path):
    proc = run_tool(python_exe, repo_root, "evaluate.py", "--cfg", "eval_esc50.yaml", "--weights", "none", "--out", str(tmp_path))
    assert proc.returncode == 2 and "EVAL.DOWNSTREAM.ROOT is empty" in proc.stderr


def test_evaluate_tool_rejects_unknown_splits(repo_root, tmp_path, capsys):
    main = tool_main(repo_root, "evaluate.py")
    args = ["--cfg", "eval_esc50.yaml", "--weights", "none", "--out", str(tmp_path), "--splits", "9", "EVAL.DOWNSTREAM.ROOT", str(tmp_path)]
    assert main(args) == 2
    assert "official splits are [1, 2, 3, 4, 5]" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# A real (tiny) catalog and snippet store for tools/discrepancy.py
# --------------------------------------------------------------------------------------------
STORE_OPTS = [
    "DATA.SNIPPET_FRAMES", "4", "DATA.FPS", "5.0", "DATA.AUDIO_RATE", "8000", "DATA.STORE_SHORT_SIDE", "24",
    "DATA.NUM_WORKERS", "0", "DATA.HELDOUT_FRACTION", "0.5",
    "INPUT.VIDEO.SHORT_SIDE", "24", "INPUT.VIDEO.CROP", "16",
    "INPUT.AUDIO.MEL_BINS", "16", "INPUT.AUDIO.N_FFT", "256", "INPUT.AUDIO.HOP", "128",
    "MODEL.VIDEO.WIDTH", "0.125", "MODEL.AUDIO.WIDTH", "0.125", "MODEL.HEAD.DIM", "8",
    "SOLVER.BATCH_SIZE", "8", "SAMPLER.K", "4",
    "EVAL.DISCREPANCY_MAX_SNIPPETS", "40", "EVAL.DISCREPANCY_PAIRS_PER_SNIPPET", "4",
]


def write_title(path, seconds, seed, fps=10, size=(40, 30), rate=8000):
    """A small mp4 (MPEG-4 video, AAC audio) whose color and tone depend on the title."""
    rng = np.random.default_rng(seed)
    color = rng.integers(30, 220, 3)
    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("mpeg4", rate=fps)
        vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
        aus = out.add_stream("aac", rate=rate, layout="mono")
        for n in range(int(seconds * fps)):
            img = np.clip(color + rng.normal(0, 25, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = n, fractions.Fraction(1, fps)
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        t = np.arange(int(seconds * rate)) / rate
        mono = (0.3 * np.sin(2 * np.pi * (200 + 100 * seed) * t) + 0.02 * rng.normal(size=t.size)).astype(np.float32)
        for start in range(0, mono.size, 1024):
            frame = av.AudioFrame.from_ndarray(mono[None, start : start + 1024].copy(), format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, start, fractions.Fraction(1, rate)
            for packet in aus.encode(frame):
                out.mux(packet)
        for packet in aus.encode():
            out.mux(packet)


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    from avplug.data.catalog import ingest
    from avplug.data.store import StoreSpec
    from avplug.data.store_writer import preprocess

    root = tmp_path_factory.mktemp("pretrain")
    (root / "src").mkdir()
    for i in range(6):
        write_title(root / "src" / f"title{i}.mp4", 6.0, seed=i)
    ingest(str(root / "src"), str(root / "catalog"), snippet_seconds=0.8, heldout_fraction=0.5, workers=1, progress=False)
    preprocess(str(root / "catalog"), str(root / "store"), StoreSpec(4, 5.0, 24, 8000), workers=1, progress=False)
    return root


def test_discrepancy_tool_on_a_checkpoint(repo_root, tiny_store, tmp_path, capsys):
    opts = STORE_OPTS + ["DATA.CATALOG_DIR", str(tiny_store / "catalog"), "DATA.STORE_DIR", str(tiny_store / "store")]
    weights = save_checkpoint(tmp_path / "model.pth", opts)
    out = tmp_path / "disc"
    main = tool_main(repo_root, "discrepancy.py")
    # No --cfg: the cfg stored in the checkpoint is used.
    assert main(["--weights", str(weights), "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((out / "discrepancy.json").read_text())
    for key in ("KL(S-||S+)", "KL(S!=||S+)", "KL(S-||S!=)", "gap"):
        assert np.isfinite(printed[key])
    assert printed["step"] == 7 and printed["num_titles"] == 3 and printed["num_S+"] == 21
    assert (out / "score_histograms.png").read_bytes()[:4] == b"\x89PNG"
    # A cfg whose model does not fit the weights is reported, naming the keys to check.
    assert main(["--cfg", "movie_tv.yaml", "--weights", str(weights), "--out", str(out), *opts, "MODEL.HEAD.DIM", "16"]) == 2
    assert "do not fit the model of the cfg" in capsys.readouterr().err
