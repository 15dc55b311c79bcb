"""End to end on the real local Slurm cluster (two nodes, one CPU each), with demo-sized data:

* ``tools/launch.py --cfg demo.yaml --nodes 2 --slurm --wait`` trains with world size 2 across n1
  and n2; preempted mid-run (submitit's signal, then Slurm's requeue) it comes back, resumes from
  its last periodic checkpoint, logs the same losses as an uninterrupted local two-process run
  (``launch_local(cfg, 2)``) and ends with the same weights;
* ``tools/preprocess.py --slurm --array-size 2 --wait`` writes the same store as a local run.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import submitit

from jobs import slurm

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[2]
SLURM_FLAGS = ["--gpus-per-node", "0", "--cpus-per-task", "1", "--time", "30", "--partition", "debug"]


def _wait_for(predicate, timeout_s: float, what: str, proc: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        if proc.poll() is not None:
            raise AssertionError(f"tools/launch.py exited ({proc.returncode}) while waiting for {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    return value


def test_launch_slurm_two_nodes_preempted_matches_local_run(demo_data, local_run, train_opts, runs, tmp_path, slurm_cli_env, release_requeued):
    """tools/launch.py --slurm --wait on two nodes, preempted mid-run: it requeues, resumes from the
    last periodic checkpoint, and logs the local run's losses and ends with its weights."""
    out = tmp_path / "slurm"
    log = tmp_path / "launch.log"
    cmd = [sys.executable, "tools/launch.py", "--cfg", "demo.yaml", "--nodes", "2", "--slurm", "--wait", *SLURM_FLAGS,
           *train_opts(demo_data, out)]
    with open(log, "w") as sink:
        proc = subprocess.Popen(cmd, cwd=REPO, env=slurm_cli_env, stdout=sink, stderr=subprocess.STDOUT, text=True)
    job_id = None
    try:
        job_id = _wait_for(lambda: (m := re.search(r"submitted Slurm job (\d+)", log.read_text())) and m.group(1), 120, "the submission", proc, log)
        _wait_for(lambda: (out / "checkpoints" / "last_checkpoint").is_file(), 300, "a periodic checkpoint", proc, log)
        # Preemption as submitit expects it: its signal (USR2) to every task; rank 0 requeues the job.
        subprocess.run(["scancel", f"--signal={submitit.JobEnvironment.USR_SIG}", job_id], check=True)
        _wait_for(lambda: slurm.job_state(job_id).restarts >= 1, 120, "the job to requeue itself", proc, log)
        release_requeued(job_id)
        proc.wait(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
            if job_id:
                subprocess.run(["scancel", job_id], check=False)
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    assert "world size 2" in text and f"Slurm job {job_id} finished" in text
    assert "this job is preempted" in text and "resumed from" in text  # --wait streamed rank 0's log across the requeue
    final = slurm.job_state(job_id)
    assert (final.state, final.restarts) == ("COMPLETED", 1)

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {r["world_size"] for r in rows if "world_size" in r} == {2}
    job_dirs = [p for p in (out / "slurm").iterdir() if p.is_dir()]
    assert [p.name for p in job_dirs] == [job_id]
    assert len(list(job_dirs[0].glob("*_log.out"))) == 2  # one task on each of the two nodes
    assert (out / "config.yaml").is_file() and any((out / "code").iterdir())

    reference, losses = runs.losses(local_run), runs.losses(out)
    assert sorted(losses) == sorted(reference)
    for step, loss in losses.items():
        assert loss == pytest.approx(reference[step], rel=1e-6), f"step {step}"
    step, weights = runs.final_weights(out)
    ref_step, ref_weights = runs.final_weights(local_run)
    assert step == ref_step
    runs.assert_same_weights(weights, ref_weights)


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
    proc = subprocess.run(cmd, cwd=REPO, env=slurm_cli_env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "(2/2)" in proc.stdout and "merged" in proc.stdout
    logs = store.with_name(store.name + ".slurm")
    assert len(list(logs.glob("*/*_0_log.out"))) == 3  # two array tasks and the merge job
    assert _store_files(store) == _store_files(demo_data["store"])
