"""jobs.evaluate: one Slurm array task per downstream split plus an aggregate job, equal to a local
``run_evaluation``; and its dry run."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from avplug.config import load_config
from jobs import evaluate, slurm

SLURM_FLAGS = ["--gpus-per-node", "0", "--cpus-per-task", "1", "--time", "30", "--partition", "debug"]
# A tiny model and an ESC-50 linear probe: seconds per split on one CPU.
TINY = [
    "MODEL.VIDEO.WIDTH", "0.125", "MODEL.AUDIO.WIDTH", "0.125", "MODEL.HEAD.DIM", "16",
    "DATA.AUDIO_RATE", "8000", "INPUT.AUDIO.MEL_BINS", "16", "INPUT.AUDIO.N_FFT", "256", "INPUT.AUDIO.HOP", "128",
    "EVAL.DOWNSTREAM.DATASET", "ESC50", "EVAL.DOWNSTREAM.PROTOCOL", "linear", "EVAL.DOWNSTREAM.CLIP_SECONDS", "0.5",
    "EVAL.DOWNSTREAM.NUM_CLIPS", "2", "EVAL.DOWNSTREAM.BATCH_SIZE", "4", "EVAL.DOWNSTREAM.NUM_WORKERS", "0",
    "EVAL.DOWNSTREAM.LINEAR_MAX_ITER", "50", "SOLVER.AMP", "off",
]


@pytest.fixture(scope="module")
def tiny_esc50(tmp_path_factory, esc50_layout) -> Path:
    """ESC-50 layout: 2 classes (a low and a high tone), 2 clips per class and fold, 1 s at 8 kHz."""
    return esc50_layout(tmp_path_factory.mktemp("ESC-50-master"))


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dry-run", action="store_true")
    slurm.add_slurm_args(parser)
    return parser.parse_args(list(argv))


def test_dry_run_prints_an_array_over_the_splits(tmp_path, capsys):
    cfg = load_config("movie_tv.yaml", [*TINY, "OUTPUT_DIR", str(tmp_path / "eval")])
    assert evaluate.submit_evaluation(cfg, _args("--dry-run", "--gpus-per-node", "8"), weights="none", splits=[1, 3]) is None
    text = capsys.readouterr().out
    assert "#SBATCH --array=0-1%2" in text and "#SBATCH --gpus-per-node=1" in text  # one GPU per split task
    assert not (tmp_path / "eval").exists()


@pytest.mark.slurm
def test_split_array_and_aggregate_match_a_local_evaluation(tiny_esc50, tmp_path, monkeypatch):
    from avplug.evaluation.downstream_protocols import run_evaluation

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    cfg = load_config("movie_tv.yaml", [*TINY, "EVAL.DOWNSTREAM.ROOT", str(tiny_esc50), "OUTPUT_DIR", str(tmp_path / "slurm")])
    args = _args(*SLURM_FLAGS)
    args.wait = True
    split_jobs, aggregate_job = evaluate.submit_evaluation(cfg, args, weights="none", splits=[1, 2])
    assert [j.job_id.split("_")[1] for j in split_jobs] == ["0", "1"]
    summary = json.loads((tmp_path / "slurm" / "results.json").read_text())
    assert summary["splits"] == [1, 2] and (tmp_path / "slurm" / "results.md").is_file()
    assert slurm.job_state(aggregate_job.job_id).state == "COMPLETED"

    local_cfg = load_config("movie_tv.yaml", [*TINY, "EVAL.DOWNSTREAM.ROOT", str(tiny_esc50), "OUTPUT_DIR", str(tmp_path / "local")])
    local = run_evaluation(local_cfg, "none", [1, 2])
    assert summary["per_split"] == local["per_split"] and summary["mean"] == local["mean"]
