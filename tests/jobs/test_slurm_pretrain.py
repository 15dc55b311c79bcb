"""End to end on the real local Slurm cluster (two nodes, one CPU each), with demo-sized data:

* ``tools/launch.py --cfg demo.yaml --nodes 2 --slurm --wait`` trains with world size 2 across n1
  and n2 and logs the same losses as a local two-process run (``launch_local(cfg, 2)``);
* a run preempted mid-way (submitit's signal, then Slurm's requeue) comes back, resumes from its
  last periodic checkpoint and ends with the same weights as the uninterrupted run;
* ``tools/preprocess.py --slurm --array-size 2 --wait`` writes the same store as a local run.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import submitit
import torch

from avplug.config import load_config
from jobs import slurm

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[2]
SLURM_FLAGS = ["--gpus-per-node", "0", "--cpus-per-task", "1", "--time", "30", "--partition", "debug"]


def _train_opts(data: dict[str, Path], output_dir: Path) -> list[str]:
    # 4 training titles, a global batch of 8 (one group of k = 4 per rank): a few steps per epoch.
    return [
        "DATA.CATALOG_DIR", str(data["catalog"]), "DATA.STORE_DIR", str(data["store"]), "OUTPUT_DIR", str(output_dir),
        "SOLVER.BATCH_SIZE", "8", "SOLVER.MAX_EPOCHS", "3", "SOLVER.CHECKPOINT_PERIOD", "2", "SOLVER.LOG_PERIOD", "1",
        "EVAL.DISCREPANCY_PERIOD", "-1",
    ]


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory) -> dict[str, Path]:
    """A tiny demo corpus (5 titles of 12 s), its catalog and its store from one local preprocess run."""
    from avplug.data.catalog import ingest
    from avplug.data.demo_corpus import generate_demo_corpus
    from avplug.data.store import StoreSpec, preprocess

    root = tmp_path_factory.mktemp("slurm-demo")
    cfg = load_config("demo.yaml")
    generate_demo_corpus(root / "corpus", num_movies=3, num_shows=1, episodes_per_show=2, title_seconds=12.0,
                         downstream=False, broken=False, workers=1, progress=False)
    ingest(str(root / "corpus"), str(root / "catalog"), snippet_seconds=cfg.DATA.SNIPPET_SECONDS,
           meta=str(root / "corpus" / "meta.csv"), heldout_fraction=0.2, seed=0, workers=1, progress=False)
    preprocess(str(root / "catalog"), str(root / "store"), StoreSpec.from_cfg(cfg), workers=1, progress=False)
    return {"root": root, "catalog": root / "catalog", "store": root / "store"}


@pytest.fixture(scope="module")
def local_run(demo_data) -> Path:
    """The reference: the same config trained by two local processes (gloo)."""
    from avplug.engine.launch import launch_local

    out = demo_data["root"] / "local"
    cfg = load_config("demo.yaml", _train_opts(demo_data, out), world_size=2)
    summary = launch_local(cfg, 2)
    assert summary["world_size"] == 2
    return out


def _losses(output_dir: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def _final_weights(output_dir: Path) -> tuple[int, dict[str, torch.Tensor]]:
    from avplug.engine.checkpoint import Checkpointer

    path, state = Checkpointer(output_dir / "checkpoints").load_latest()
    return state["step"], state["model"]


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], rel: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    for name in a:
        x, y = a[name].double(), b[name].double()
        scale = max(y.abs().max().item(), 1e-12)
        assert (x - y).abs().max().item() <= rel * scale, f"{name} differs by more than {rel} relative"


def test_launch_slurm_two_nodes_matches_local_run(demo_data, local_run, tmp_path, slurm_cli_env):
    out = tmp_path / "slurm"
    cmd = [sys.executable, "tools/launch.py", "--cfg", "demo.yaml", "--nodes", "2", "--slurm", "--wait", *SLURM_FLAGS,
           *_train_opts(demo_data, out)]
    proc = subprocess.run(cmd, cwd=REPO, env=slurm_cli_env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "world size 2" in proc.stdout and "finished" in proc.stdout
    assert "step " in proc.stdout + proc.stderr  # rank 0's training log was streamed

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {r["world_size"] for r in rows if "world_size" in r} == {2}
    job_dirs = list((out / "slurm").iterdir())
    assert len(job_dirs) == 1
    task_logs = sorted(p.name for p in job_dirs[0].glob("*_log.out"))
    assert len(task_logs) == 2  # one task on each of the two nodes
    assert (out / "config.yaml").is_file() and any((out / "code").iterdir())

    reference = _losses(local_run)
    assert sorted(_losses(out)) == sorted(reference)
    for step, loss in _losses(out).items():
        assert loss == pytest.approx(reference[step], rel=1e-6), f"step {step}"
    step, weights = _final_weights(out)
    ref_step, ref_weights = _final_weights(local_run)
    assert step == ref_step
    _assert_same_weights(weights, ref_weights)


def test_preempted_run_requeues_and_ends_with_the_same_weights(demo_data, local_run, tmp_path, monkeypatch, release_requeued):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as the reference's ranks
    out = tmp_path / "preempted"
    cfg = load_config("demo.yaml", _train_opts(demo_data, out))
    parser = argparse.ArgumentParser()
    slurm.add_slurm_args(parser)
    args = parser.parse_args(SLURM_FLAGS)
    args.nodes = 2
    job = slurm.submit_pretraining(cfg, args)
    ref_step, ref_weights = _final_weights(local_run)

    last = out / "checkpoints" / "last_checkpoint"
    deadline = time.monotonic() + 240
    while not last.is_file():
        assert time.monotonic() < deadline, "no periodic checkpoint appeared"
        assert slurm.job_state(job.job_id).state not in slurm.TERMINAL_STATES, "the job ended before it could be preempted"
        time.sleep(0.5)
    # Preemption as submitit expects it: its signal (USR2) to every task; rank 0 requeues the job.
    subprocess.run(["scancel", f"--signal={submitit.JobEnvironment.USR_SIG}", job.job_id], check=True)
    deadline = time.monotonic() + 120
    while (state := slurm.job_state(job.job_id)).restarts < 1:
        assert time.monotonic() < deadline, f"the job did not requeue itself (state {state})"
        assert state.state not in slurm.TERMINAL_STATES, f"the job ended {state.state} instead of requeueing"
        time.sleep(0.5)
    if state.state == "PENDING":
        release_requeued(job.job_id)

    summaries = slurm.follow(job, timeout_s=400, stdout=sys.stderr)
    assert [s["world_size"] for s in summaries] == [2, 2]
    final = slurm.job_state(job.job_id)
    assert (final.state, final.restarts) == ("COMPLETED", 1)
    assert "resumed from" in (out / "log.txt").read_text()
    step, weights = _final_weights(out)
    assert step == ref_step
    _assert_same_weights(weights, ref_weights)


def _store_files(store: Path) -> dict[str, object]:
    """Every file of a store by relative path: bytes, except meta.json without its timing."""
    files: dict[str, object] = {}
    for path in sorted(p for p in store.rglob("*") if p.is_file()):
        rel = str(path.relative_to(store))
        if path.name == "meta.json":
            meta = json.loads(path.read_text())
            meta.pop("preprocess_seconds", None)
            files[rel] = meta
        else:
            files[rel] = path.read_bytes()
    return files


def test_preprocess_array_writes_the_same_store_as_a_local_run(demo_data, tmp_path, slurm_cli_env):
    store = tmp_path / "store"
    cmd = [sys.executable, "tools/preprocess.py", "--cfg", "demo.yaml", "--catalog", str(demo_data["catalog"]), "--out", str(store),
           "--workers", "1", "--no-progress", "--slurm", "--array-size", "2", "--wait", *SLURM_FLAGS]
    proc = subprocess.run(cmd, cwd=REPO, env=slurm_cli_env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "(2/2)" in proc.stdout and "merged" in proc.stdout
    logs = store.with_name(store.name + ".slurm")
    assert len(list(logs.glob("*/*_0_log.out"))) == 3  # two array tasks and the merge job
    assert _store_files(store) == _store_files(demo_data["store"])
